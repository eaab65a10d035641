//! Batches of CRM rows, applied: the same code for the HTTP API and for
//! `kefu import`.
//!
//! Every row is read on its own (a malformed row is rejected, the others
//! go on), validated, and compared with the version stored for its key: a
//! newer version applies, the same version is `unchanged` (sending a batch
//! twice changes nothing), an older one is `stale` and ignored. Rows are
//! written in chunks, one transaction each; a chunk that fails in the
//! database is written again row by row, so one bad row is rejected with
//! its reason and the good ones stay. What the rows change in routing (the
//! router's snapshot, shifts, open conversations that must move) is done
//! once the chunk is committed, and only by a live server.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeDelta, TimeZone, Utc};
use sea_orm::{DatabaseTransaction, TransactionTrait};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

use super::rows::*;
use crate::auth::Role;
use crate::conversation::state::{ReleaseReason, TransferTarget, Trigger};
use crate::ids::{AgentId, ConversationId, CustomerId, GroupId};
use crate::state::AppState;
use crate::store::crm::{
    self as db, AgentRow as DbAgent, CustomerRow as DbCustomer, VehicleRow as DbVehicle,
};
use crate::store::followers::IdentityKind;
use crate::store::{Store, StoreError};

/// Rows written per transaction.
const CHUNK: usize = 50;

/// What a batch did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Report {
    pub received: usize,
    pub applied: usize,
    /// Same version as stored: nothing to do.
    pub unchanged: usize,
    /// Older than the stored version: ignored.
    pub stale: usize,
    pub rejected: Vec<Rejected>,
    /// A dry run: nothing was kept.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

impl Report {
    fn add(&mut self, other: Report) {
        self.received += other.received;
        self.applied += other.applied;
        self.unchanged += other.unchanged;
        self.stale += other.stale;
        self.rejected.extend(other.rejected);
    }
}

/// A row that was not applied, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Rejected {
    /// Its place in the batch (0-based; for a CSV file, the data row).
    pub index: usize,
    /// Its key, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub error: String,
}

/// What a committed chunk asks of the live server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum After {
    /// Agents, groups or the region map changed: reload the router.
    Reload,
    /// An agent's shifts changed.
    Shifts(AgentId),
    /// Customers were merged: the pipeline's identity cache is stale.
    ForgetCustomers,
    /// The agent left or changed group: re-route this conversation.
    Release(ConversationId, AgentId),
    /// The customer's new dedicated agent takes their open conversation.
    Transfer(ConversationId, AgentId),
}

/// Where a batch runs: against the database only (`kefu import`), or in
/// the server, which also moves what is live.
pub struct Sync<'a> {
    store: &'a Store,
    live: Option<&'a AppState>,
    offset: FixedOffset,
    dry_run: bool,
    /// CRM ids already resolved in this call (ids never change).
    ids: std::sync::Mutex<Ids>,
}

/// What a call resolved once and reuses for every row.
#[derive(Default)]
struct Ids {
    groups: HashMap<String, GroupId>,
    agents: HashMap<String, AgentId>,
    active: HashMap<AgentId, bool>,
    /// Prefetched for the chunk being written.
    customers: HashMap<String, CustomerId>,
    /// Customers of the chunk with a conversation an agent holds.
    held: HashSet<CustomerId>,
    /// Channel identities of the chunk Kefu knows already.
    known: HashSet<(&'static str, String, String)>,
}

impl<'a> Sync<'a> {
    /// In the server.
    pub fn live(state: &'a AppState) -> Self {
        Self {
            store: &state.store,
            live: Some(state),
            offset: offset(state.settings.crm.utc_offset_hours),
            dry_run: false,
            ids: Default::default(),
        }
    }

    /// Against the database alone; a running server sees the changes at its
    /// next reconciliation (`routing.reconcile_secs`).
    pub fn offline(store: &'a Store, utc_offset_hours: i32, dry_run: bool) -> Self {
        Self {
            store,
            live: None,
            offset: offset(utc_offset_hours),
            dry_run,
            ids: Default::default(),
        }
    }

    /// Applies rows of `kind` (`agents`, `groups`, `regions`, `bindings`,
    /// `shifts`, `customers`, `vehicles`, `agent-events`).
    pub async fn apply(&self, kind: Kind, rows: Vec<Value>) -> Result<Report, StoreError> {
        match kind {
            Kind::Groups => self.run::<GroupIn>(rows).await,
            Kind::Regions => self.run::<RegionIn>(rows).await,
            Kind::Agents => self.run::<AgentIn>(rows).await,
            Kind::AgentEvents => self.run::<AgentEventIn>(rows).await,
            Kind::Bindings => self.run::<BindingIn>(rows).await,
            Kind::Shifts => self.run::<ShiftIn>(rows).await,
            Kind::Customers => self.run::<CustomerIn>(rows).await,
            Kind::Vehicles => self.run::<VehicleIn>(rows).await,
        }
    }

    async fn run<R: CrmRow>(&self, rows: Vec<Value>) -> Result<Report, StoreError> {
        let mut report = Report {
            received: rows.len(),
            dry_run: self.dry_run,
            ..Report::default()
        };
        // Read and validate each row; keep the newest of a key sent twice.
        let mut good: Vec<(usize, R)> = Vec::with_capacity(rows.len());
        let mut newest: HashMap<String, (usize, i64)> = HashMap::new();
        for (index, raw) in rows.into_iter().enumerate() {
            let key = raw_key(&raw, R::KEY_FIELDS);
            match serde_json::from_value::<R>(raw)
                .map_err(|e| e.to_string())
                .and_then(|r| r.check().map(|()| r))
            {
                Ok(r) => {
                    let k = r.key();
                    let v = r.version();
                    match newest.get(&k) {
                        Some((_, old)) if *old > v => {
                            report.stale += 1;
                            continue;
                        }
                        Some((_, old)) if *old == v => {
                            report.unchanged += 1;
                            continue;
                        }
                        _ => {}
                    }
                    newest.insert(k, (good.len(), v));
                    good.push((index, r));
                }
                Err(error) => report.rejected.push(Rejected { index, key, error }),
            }
        }
        // A key sent twice: only its newest row stays.
        let keep: HashSet<usize> = newest.values().map(|(i, _)| *i).collect();
        let mut superseded = 0;
        let good: Vec<(usize, R)> = good
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| {
                if keep.contains(&i) {
                    Some(r)
                } else {
                    superseded += 1;
                    None
                }
            })
            .collect();
        report.stale += superseded;
        let mut after: Vec<After> = Vec::new();
        for chunk in good.chunks(CHUNK) {
            let (part, more) = self.chunk(chunk).await?;
            report.add(part);
            after.extend(more);
        }
        report.rejected.sort_by_key(|r| r.index);
        if !self.dry_run {
            self.carry_out(after).await;
        }
        Ok(report)
    }

    /// One chunk in one transaction; row by row when the database refuses it.
    async fn chunk<R: CrmRow>(
        &self,
        rows: &[(usize, R)],
    ) -> Result<(Report, Vec<After>), StoreError> {
        let keys: Vec<String> = rows.iter().map(|(_, r)| r.key()).collect();
        let stored = db::versions(self.store.conn(), R::ENTITY, &keys).await?;
        let fresh: Vec<&(usize, R)> = rows
            .iter()
            .filter(|(_, r)| stored.get(&r.key()).is_none_or(|v| r.version() > *v))
            .collect();
        let mut report = Report::default();
        for (_, r) in rows {
            match stored.get(&r.key()) {
                Some(v) if r.version() == *v => report.unchanged += 1,
                Some(v) if r.version() < *v => report.stale += 1,
                _ => {}
            }
        }
        if fresh.is_empty() {
            return Ok((report, Vec::new()));
        }
        R::prefetch(self, &fresh).await?;
        match self.write(&fresh).await {
            Ok((part, after)) => {
                report.add(part);
                Ok((report, after))
            }
            Err(e) if fresh.len() > 1 => {
                tracing::debug!(error = %e, "a CRM chunk failed; writing it row by row");
                let mut after = Vec::new();
                for row in fresh {
                    match self.write(&[row]).await {
                        Ok((part, more)) => {
                            report.add(part);
                            after.extend(more);
                        }
                        Err(e) => report.rejected.push(Rejected {
                            index: row.0,
                            key: Some(row.1.key()),
                            error: db_reason(&e),
                        }),
                    }
                }
                Ok((report, after))
            }
            Err(e) => {
                report.rejected.push(Rejected {
                    index: fresh[0].0,
                    key: Some(fresh[0].1.key()),
                    error: db_reason(&e),
                });
                Ok((report, Vec::new()))
            }
        }
    }

    /// Writes rows in one transaction (rolled back on a dry run).
    async fn write<R: CrmRow>(
        &self,
        rows: &[&(usize, R)],
    ) -> Result<(Report, Vec<After>), StoreError> {
        let txn = self.store.writer().begin().await?;
        let mut report = Report::default();
        let mut after = Vec::new();
        let mut versions = Vec::new();
        for (index, r) in rows {
            match r.write(self, &txn).await? {
                Ok(more) => {
                    report.applied += 1;
                    after.extend(more);
                    versions.push((r.key(), r.version()));
                }
                Err(error) => report.rejected.push(Rejected {
                    index: *index,
                    key: Some(r.key()),
                    error,
                }),
            }
        }
        db::save_versions(&txn, R::ENTITY, &versions).await?;
        if self.dry_run {
            txn.rollback().await?;
        } else {
            txn.commit().await?;
        }
        Ok((report, after))
    }

    /// What the committed rows change in the running server.
    async fn carry_out(&self, after: Vec<After>) {
        let Some(state) = self.live else {
            return;
        };
        let mut seen = HashSet::new();
        let after: Vec<After> = after
            .into_iter()
            .filter(|a| seen.insert(a.clone()))
            .collect();
        if after.contains(&After::ForgetCustomers) {
            state.pipeline.forget_customers();
            // Other instances too.
            state.bus.publish(crate::bus::Event::CustomersMerged {
                removed: Vec::new(),
                identities: Vec::new(),
            });
        }
        if after.contains(&After::Reload)
            && let Err(e) = state.router.reload(&state.store).await
        {
            tracing::warn!(error = %e, "router not reloaded after a CRM sync; the next reconciliation will");
        }
        let now = Utc::now();
        for a in &after {
            match a {
                After::Shifts(agent) => match state.store.shifts_of(*agent, now).await {
                    Ok(spans) => state.router.set_shifts(*agent, spans),
                    Err(e) => tracing::warn!(agent = %agent, error = %e, "shifts not reloaded"),
                },
                After::Release(conversation, agent) => {
                    let t = Trigger::AgentReleased {
                        agent: *agent,
                        why: ReleaseReason::Departed,
                    };
                    if let Err(e) = state.pipeline.trigger(*conversation, t, "crm").await {
                        tracing::info!(conversation = %conversation, error = %e, "conversation not re-routed after a CRM change");
                    }
                }
                After::Transfer(conversation, agent) => {
                    let t = Trigger::Transferred {
                        to: TransferTarget::Agent(*agent),
                    };
                    if let Err(e) = state
                        .pipeline
                        .trigger_with_note(
                            *conversation,
                            t,
                            "crm",
                            Some("CRM 改派 / reassigned in the CRM"),
                        )
                        .await
                    {
                        tracing::info!(conversation = %conversation, error = %e, "conversation not moved to the new dedicated agent");
                    }
                }
                After::Reload | After::ForgetCustomers => {}
            }
        }
        state.queue.signal();
    }
}

fn offset(hours: i32) -> FixedOffset {
    FixedOffset::east_opt(hours.clamp(-23, 23) * 3600)
        .unwrap_or_else(|| FixedOffset::east_opt(0).expect("UTC"))
}

/// A database refusal, worded for the CRM.
fn db_reason(e: &StoreError) -> String {
    match e {
        StoreError::Duplicate => "conflicts with another row (a unique value is taken)".into(),
        StoreError::NotFound => "refers to something that does not exist".into(),
        other => {
            tracing::warn!(error = %other, "a CRM row failed in the database");
            "the database refused this row".into()
        }
    }
}

/// The key of a row that could not be read, for the report.
fn raw_key(raw: &Value, fields: &[&str]) -> Option<String> {
    let parts: Vec<String> = fields
        .iter()
        .map(|f| match raw.get(*f) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
        .collect::<Option<_>>()?;
    Some(parts.join("/"))
}

/// What every kind of row does.
trait CrmRow: DeserializeOwned + Send + std::marker::Sync {
    /// Its name in `crm_versions`.
    const ENTITY: &'static str;
    /// The fields that make its key.
    const KEY_FIELDS: &'static [&'static str];
    fn key(&self) -> String;
    fn version(&self) -> i64;
    /// Checks that need no database.
    fn check(&self) -> Result<(), String>;
    /// Reads what a chunk's rows refer to, outside the writing transaction.
    async fn prefetch(_sync: &Sync<'_>, _rows: &[&(usize, Self)]) -> Result<(), StoreError> {
        Ok(())
    }
    /// Writes the row; `Err(reason)` rejects it (nothing of it written).
    async fn write(
        &self,
        sync: &Sync<'_>,
        txn: &DatabaseTransaction,
    ) -> Result<Result<Vec<After>, String>, StoreError>;
}

/// The CRM's version: a number, or a timestamp (RFC 3339, taken as
/// milliseconds since 1970).
pub(crate) fn version<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match Value::deserialize(d)? {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| serde::de::Error::custom("version must be a whole number")),
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .ok()
            .or_else(|| {
                DateTime::parse_from_rfc3339(s.trim())
                    .ok()
                    .map(|t| t.timestamp_millis())
            })
            .ok_or_else(|| {
                serde::de::Error::custom("version must be a number or an RFC 3339 timestamp")
            }),
        _ => Err(serde::de::Error::custom(
            "version must be a number or an RFC 3339 timestamp",
        )),
    }
}

fn need(field: &str, v: &str, max: usize) -> Result<(), String> {
    if v.trim().is_empty() {
        return Err(format!("{field} is empty"));
    }
    if v.chars().count() > max {
        return Err(format!("{field} is longer than {max} characters"));
    }
    Ok(())
}

fn maybe(field: &str, v: &Option<String>, max: usize) -> Result<(), String> {
    match v {
        Some(s) if s.chars().count() > max => {
            Err(format!("{field} is longer than {max} characters"))
        }
        _ => Ok(()),
    }
}

impl Sync<'_> {
    fn ids(&self) -> std::sync::MutexGuard<'_, Ids> {
        self.ids.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn group_id(
        &self,
        txn: &DatabaseTransaction,
        crm: &str,
    ) -> Result<Option<GroupId>, StoreError> {
        if let Some(g) = self.ids().groups.get(crm) {
            return Ok(Some(*g));
        }
        let found = db::group_ids(txn, &[crm.to_owned()])
            .await?
            .get(crm)
            .copied();
        if let Some(g) = found {
            self.ids().groups.insert(crm.to_owned(), g);
        }
        Ok(found)
    }

    async fn agent_id(
        &self,
        txn: &DatabaseTransaction,
        crm: &str,
    ) -> Result<Option<AgentId>, StoreError> {
        if let Some(a) = self.ids().agents.get(crm) {
            return Ok(Some(*a));
        }
        let found = db::agent_ids(txn, &[crm.to_owned()])
            .await?
            .get(crm)
            .copied();
        if let Some(a) = found {
            self.ids().agents.insert(crm.to_owned(), a);
        }
        Ok(found)
    }

    async fn agent_active(
        &self,
        txn: &DatabaseTransaction,
        a: AgentId,
    ) -> Result<bool, StoreError> {
        if let Some(v) = self.ids().active.get(&a) {
            return Ok(*v);
        }
        let v = db::agent_active(txn, a).await?;
        self.ids().active.insert(a, v);
        Ok(v)
    }

    async fn customer_id(
        &self,
        txn: &DatabaseTransaction,
        crm: &str,
    ) -> Result<Option<CustomerId>, StoreError> {
        if let Some(c) = self.ids().customers.get(crm) {
            return Ok(Some(*c));
        }
        Ok(db::customer_ids(txn, &[crm.to_owned()])
            .await?
            .get(crm)
            .copied())
    }

    /// The customers the rows name, read in one go (outside the writing
    /// transaction: only what is committed).
    async fn prefetch_customers(
        &self,
        crm: Vec<String>,
    ) -> Result<HashMap<String, CustomerId>, StoreError> {
        let found = db::customer_ids(self.store.conn(), &crm).await?;
        self.ids().customers = found.clone();
        Ok(found)
    }
}

impl CrmRow for GroupIn {
    const ENTITY: &'static str = "group";
    const KEY_FIELDS: &'static [&'static str] = &["id"];
    fn key(&self) -> String {
        self.id.clone()
    }
    fn version(&self) -> i64 {
        self.version
    }
    fn check(&self) -> Result<(), String> {
        need("id", &self.id, 64)?;
        need("name", &self.name, 64)
    }
    async fn write(
        &self,
        _: &Sync<'_>,
        txn: &DatabaseTransaction,
    ) -> Result<Result<Vec<After>, String>, StoreError> {
        db::upsert_group(txn, &self.id, self.name.trim()).await?;
        Ok(Ok(vec![After::Reload]))
    }
}

impl CrmRow for RegionIn {
    const ENTITY: &'static str = "region";
    const KEY_FIELDS: &'static [&'static str] = &["region"];
    fn key(&self) -> String {
        crate::routing::assign::region_key(&self.region)
    }
    fn version(&self) -> i64 {
        self.version
    }
    fn check(&self) -> Result<(), String> {
        need("region", &self.region, 64)
    }
    async fn write(
        &self,
        sync: &Sync<'_>,
        txn: &DatabaseTransaction,
    ) -> Result<Result<Vec<After>, String>, StoreError> {
        let group = match &self.group {
            Some(g) => match sync.group_id(txn, g).await? {
                Some(id) => Some(id),
                None => return Ok(Err(format!("group {g:?} does not exist"))),
            },
            None => None,
        };
        db::set_region(txn, self.region.trim(), group).await?;
        Ok(Ok(vec![After::Reload]))
    }
}

impl CrmRow for AgentIn {
    const ENTITY: &'static str = "agent";
    const KEY_FIELDS: &'static [&'static str] = &["id"];
    fn key(&self) -> String {
        self.id.clone()
    }
    fn version(&self) -> i64 {
        self.version
    }
    fn check(&self) -> Result<(), String> {
        need("id", &self.id, 64)?;
        need("login", &self.login, 64)?;
        if !self
            .login
            .chars()
            .all(|c| c.is_alphanumeric() || "._-@".contains(c))
        {
            return Err("login may hold letters, digits and . _ - @ only".into());
        }
        need("name", &self.name, 64)?;
        if let Some(c) = self.capacity
            && !(0..=1000).contains(&c)
        {
            return Err("capacity must be between 0 and 1000".into());
        }
        if Role::parse(&self.role).is_none() {
            return Err(format!(
                "role {:?} is not agent, supervisor or admin",
                self.role
            ));
        }
        if self.groups.len() > 20 {
            return Err("at most 20 groups".into());
        }
        Ok(())
    }
    async fn write(
        &self,
        sync: &Sync<'_>,
        txn: &DatabaseTransaction,
    ) -> Result<Result<Vec<After>, String>, StoreError> {
        let mut groups = Vec::with_capacity(self.groups.len());
        for g in &self.groups {
            match sync.group_id(txn, g).await? {
                Some(id) if !groups.contains(&id) => groups.push(id),
                Some(_) => {}
                None => return Ok(Err(format!("group {g:?} does not exist"))),
            }
        }
        let up = match db::upsert_agent(
            txn,
            &DbAgent {
                crm_id: &self.id,
                login: self.login.trim(),
                name: self.name.trim(),
                role: &self.role,
                capacity: self.capacity,
                groups: &groups,
            },
        )
        .await
        {
            Ok(up) => up,
            Err(StoreError::Duplicate) => {
                return Ok(Err(format!(
                    "login {:?} belongs to another user",
                    self.login
                )));
            }
            Err(e) => return Err(e),
        };
        let mut after = vec![After::Reload];
        // A new home group is a transfer (调岗).
        if let Some(old) = up.groups_before.first()
            && groups.first() != Some(old)
        {
            after.extend(moved_away(txn, up.id, *old, "agent_transferred").await?);
        }
        Ok(Ok(after))
    }
}

/// The agent left `group` (or the company): their customers are rebound
/// within it, fewest bound customers first, each change recorded for the
/// CRM; their open conversations are re-routed.
async fn moved_away(
    txn: &DatabaseTransaction,
    agent: AgentId,
    group: GroupId,
    reason: &str,
) -> Result<Vec<After>, StoreError> {
    let customers = db::bound_customers(txn, agent).await?;
    if !customers.is_empty() {
        let mut pool = db::group_bound_counts(txn, group, agent).await?;
        let from_crm = crm_of_agent(txn, agent).await?;
        for c in customers {
            // Fewest bound first; ties by id (stable, so the same run twice
            // spreads the same way).
            let Some(best) = pool.iter_mut().min_by_key(|(a, n)| (*n, a.0)) else {
                break;
            };
            best.1 += 1;
            let to = best.0;
            db::set_binding(txn, c, Some(to)).await?;
            let payload = json!({
                "customer": crm_of_customer(txn, c).await?,
                "from_agent": from_crm,
                "to_agent": crm_of_agent(txn, to).await?,
                "reason": reason,
            });
            db::record_event(txn, "binding.changed", Some(c), &payload).await?;
        }
    }
    Ok(crate::store::crm::assigned_of_agent(txn, agent)
        .await?
        .into_iter()
        .map(|conv| After::Release(conv, agent))
        .collect())
}

async fn crm_of_agent(txn: &DatabaseTransaction, a: AgentId) -> Result<String, StoreError> {
    Ok(crate::store::crm::agent_crm_id(txn, a)
        .await?
        .unwrap_or_else(|| format!("kefu:{a}")))
}

async fn crm_of_customer(txn: &DatabaseTransaction, c: CustomerId) -> Result<String, StoreError> {
    Ok(crate::store::crm::customer_crm_id(txn, c)
        .await?
        .unwrap_or_else(|| format!("kefu:{c}")))
}

impl CrmRow for AgentEventIn {
    const ENTITY: &'static str = "agent_event";
    const KEY_FIELDS: &'static [&'static str] = &["agent"];
    fn key(&self) -> String {
        self.agent.clone()
    }
    fn version(&self) -> i64 {
        self.version
    }
    fn check(&self) -> Result<(), String> {
        need("agent", &self.agent, 64)?;
        match (self.event, &self.group) {
            (AgentEvent::Transferred, None) => Err("a transfer names the new group".into()),
            _ => Ok(()),
        }
    }
    async fn write(
        &self,
        sync: &Sync<'_>,
        txn: &DatabaseTransaction,
    ) -> Result<Result<Vec<After>, String>, StoreError> {
        let Some(agent) = sync.agent_id(txn, &self.agent).await? else {
            return Ok(Err(format!("agent {:?} does not exist", self.agent)));
        };
        let groups = db::groups_of(txn, agent).await?;
        let mut after = vec![After::Reload];
        match self.event {
            AgentEvent::Left => {
                db::mark_departed(txn, agent, self.at.unwrap_or_else(Utc::now)).await?;
                match groups.first() {
                    Some(home) => after.extend(moved_away(txn, agent, *home, "agent_left").await?),
                    None => after.extend(
                        crate::store::crm::assigned_of_agent(txn, agent)
                            .await?
                            .into_iter()
                            .map(|c| After::Release(c, agent)),
                    ),
                }
            }
            AgentEvent::Transferred => {
                let g = self.group.as_deref().unwrap_or_default();
                let Some(to) = sync.group_id(txn, g).await? else {
                    return Ok(Err(format!("group {g:?} does not exist")));
                };
                if groups.first() == Some(&to) {
                    return Ok(Ok(Vec::new()));
                }
                db::set_groups(txn, agent, &[to]).await?;
                if let Some(home) = groups.first() {
                    after.extend(moved_away(txn, agent, *home, "agent_transferred").await?);
                }
            }
        }
        Ok(Ok(after))
    }
}

impl CrmRow for BindingIn {
    const ENTITY: &'static str = "binding";
    const KEY_FIELDS: &'static [&'static str] = &["customer"];
    fn key(&self) -> String {
        self.customer.clone()
    }
    fn version(&self) -> i64 {
        self.version
    }
    fn check(&self) -> Result<(), String> {
        need("customer", &self.customer, 64)?;
        maybe("agent", &self.agent, 64)
    }
    async fn prefetch(sync: &Sync<'_>, rows: &[&(usize, Self)]) -> Result<(), StoreError> {
        let found = sync
            .prefetch_customers(rows.iter().map(|(_, r)| r.customer.clone()).collect())
            .await?;
        let ids: Vec<CustomerId> = found.into_values().collect();
        let held = db::customers_held(sync.store.conn(), &ids).await?;
        sync.ids().held = held;
        Ok(())
    }
    async fn write(
        &self,
        sync: &Sync<'_>,
        txn: &DatabaseTransaction,
    ) -> Result<Result<Vec<After>, String>, StoreError> {
        let Some(customer) = sync.customer_id(txn, &self.customer).await? else {
            return Ok(Err(format!("customer {:?} does not exist", self.customer)));
        };
        let agent = match &self.agent {
            Some(a) => match sync.agent_id(txn, a).await? {
                Some(id) if sync.agent_active(txn, id).await? => Some(id),
                Some(_) => return Ok(Err(format!("agent {a:?} has left or is disabled"))),
                None => return Ok(Err(format!("agent {a:?} does not exist"))),
            },
            None => None,
        };
        let changed = db::change_binding(txn, customer, agent).await?;
        let mut after = Vec::new();
        if changed
            && let Some(to) = agent
            && sync.ids().held.contains(&customer)
        {
            for (conv, holder) in db::assigned_conversations_of_customer(txn, customer).await? {
                if holder != to {
                    after.push(After::Transfer(ConversationId(conv), to));
                }
            }
        }
        Ok(Ok(after))
    }
}

impl CrmRow for ShiftIn {
    const ENTITY: &'static str = "shift";
    const KEY_FIELDS: &'static [&'static str] = &["agent", "day"];
    fn key(&self) -> String {
        format!("{}/{}", self.agent, self.day)
    }
    fn version(&self) -> i64 {
        self.version
    }
    fn check(&self) -> Result<(), String> {
        need("agent", &self.agent, 64)?;
        if self.shifts.len() > 24 {
            return Err("at most 24 shifts a day".into());
        }
        for (i, s) in self.shifts.iter().enumerate() {
            let a = parse_time(&s.start).map_err(|e| format!("shift {i}: start {e}"))?;
            let b = parse_time(&s.end).map_err(|e| format!("shift {i}: end {e}"))?;
            if a == b {
                return Err(format!("shift {i} is empty"));
            }
        }
        Ok(())
    }
    async fn write(
        &self,
        sync: &Sync<'_>,
        txn: &DatabaseTransaction,
    ) -> Result<Result<Vec<After>, String>, StoreError> {
        let Some(agent) = sync.agent_id(txn, &self.agent).await? else {
            return Ok(Err(format!("agent {:?} does not exist", self.agent)));
        };
        let Some((start, end)) = day_span(sync.offset, self.day) else {
            return Ok(Err("the day is out of range".into()));
        };
        let mut spans = Vec::with_capacity(self.shifts.len());
        for s in &self.shifts {
            let (Ok(a), Ok(b)) = (parse_time(&s.start), parse_time(&s.end)) else {
                return Ok(Err("a shift's time is not HH:MM".into()));
            };
            let from = at(sync.offset, self.day, a);
            // An end before the start is the next morning (a night shift).
            let mut to = at(sync.offset, self.day, b);
            if let (Some(f), Some(t)) = (from, to)
                && t <= f
            {
                to = Some(t + TimeDelta::days(1));
            }
            match (from, to) {
                (Some(f), Some(t)) => spans.push((f, t)),
                _ => return Ok(Err("a shift's time does not exist that day".into())),
            }
        }
        spans.sort();
        db::replace_day_shifts(txn, agent, start, end, &spans, &self.key()).await?;
        Ok(Ok(vec![After::Shifts(agent)]))
    }
}

/// `HH:MM` (or `HH:MM:SS`).
fn parse_time(s: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(s.trim(), "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(s.trim(), "%H:%M:%S"))
        .map_err(|_| format!("{s:?} is not HH:MM"))
}

fn at(offset: FixedOffset, day: NaiveDate, t: NaiveTime) -> Option<DateTime<Utc>> {
    offset
        .from_local_datetime(&day.and_time(t))
        .single()
        .map(|d| d.with_timezone(&Utc))
}

/// The day's start and end in the CRM's time zone: the shifts that start
/// within it are the day's (a night shift may end the next morning).
fn day_span(offset: FixedOffset, day: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let start = at(offset, day, NaiveTime::MIN)?;
    Some((start, start + TimeDelta::hours(24)))
}

impl CustomerIn {
    /// `(kind, account, value)` of each channel identity given.
    fn channel_ids(&self) -> Vec<(&'static str, String, String)> {
        let ids = &self.identities;
        let mut identities: Vec<(&'static str, String, String)> = Vec::new();
        if let Some(u) = &ids.unionid {
            identities.push((
                IdentityKind::UnionId.as_str(),
                String::new(),
                u.trim().to_owned(),
            ));
        }
        for o in &ids.oa_openid {
            identities.push((
                IdentityKind::OaOpenId.as_str(),
                o.account.clone(),
                o.id.trim().to_owned(),
            ));
        }
        for o in &ids.wecom_external_userid {
            identities.push((
                IdentityKind::WecomExternalUserId.as_str(),
                o.account.clone(),
                o.id.trim().to_owned(),
            ));
        }
        if let Some(w) = &ids.web_user {
            identities.push((WEB_USER, String::new(), w.trim().to_owned()));
        }
        identities
    }
}

impl CrmRow for CustomerIn {
    const ENTITY: &'static str = "customer";
    const KEY_FIELDS: &'static [&'static str] = &["id"];
    fn key(&self) -> String {
        self.id.clone()
    }
    fn version(&self) -> i64 {
        self.version
    }
    fn check(&self) -> Result<(), String> {
        need("id", &self.id, 64)?;
        maybe("name", &self.name, 128)?;
        maybe("phone", &self.phone, 32)?;
        maybe("region", &self.region, 64)?;
        maybe("group", &self.group, 64)?;
        if self.tags.len() > 50 {
            return Err("at most 50 tags".into());
        }
        if let Some(t) = self
            .tags
            .iter()
            .find(|t| t.contains(',') || t.trim().is_empty() || t.chars().count() > 32)
        {
            return Err(format!(
                "tag {t:?}: a tag is 1 to 32 characters without commas"
            ));
        }
        let ids = &self.identities;
        for (what, v) in ids
            .unionid
            .iter()
            .map(|v| ("unionid", v))
            .chain(ids.web_user.iter().map(|v| ("web_user", v)))
        {
            need(&format!("identities.{what}"), v, 128)?;
        }
        for o in &ids.oa_openid {
            need("identities.oa_openid.account", &o.account, 64)?;
            need("identities.oa_openid.id", &o.id, 128)?;
        }
        for o in &ids.wecom_external_userid {
            need("identities.wecom_external_userid.account", &o.account, 64)?;
            need("identities.wecom_external_userid.id", &o.id, 128)?;
        }
        Ok(())
    }
    async fn prefetch(sync: &Sync<'_>, rows: &[&(usize, Self)]) -> Result<(), StoreError> {
        sync.prefetch_customers(rows.iter().map(|(_, r)| r.id.clone()).collect())
            .await?;
        let wanted: Vec<(&'static str, String, String)> =
            rows.iter().flat_map(|(_, r)| r.channel_ids()).collect();
        let known = db::known_identities(sync.store.conn(), &wanted).await?;
        sync.ids().known = known;
        Ok(())
    }
    async fn write(
        &self,
        sync: &Sync<'_>,
        txn: &DatabaseTransaction,
    ) -> Result<Result<Vec<After>, String>, StoreError> {
        let group = match &self.group {
            Some(g) => match sync.group_id(txn, g).await? {
                Some(id) => Some(id),
                None => return Ok(Err(format!("group {g:?} does not exist"))),
            },
            None => None,
        };
        let identities = self.channel_ids();
        let fresh = !sync.ids().customers.contains_key(&self.id)
            && identities.iter().all(|i| !sync.ids().known.contains(i));
        let row = DbCustomer {
            crm_id: self.id.clone(),
            name: self.name.clone(),
            phone: self.phone.clone(),
            region: self.region.clone(),
            group,
            tags: (!self.tags.is_empty()).then(|| self.tags.join(",")),
            identities,
        };
        if fresh {
            // Neither the customer nor any of their channels is known: the
            // first load's case, two statements.
            return match db::insert_customer(txn, &row).await {
                Ok(_) => Ok(Ok(Vec::new())),
                Err(StoreError::Duplicate) => Ok(Err(
                    "a channel identity belongs to another CRM customer".into(),
                )),
                Err(e) => Err(e),
            };
        }
        match db::upsert_customer(txn, &row).await {
            Ok(up) if up.merged.is_empty() => Ok(Ok(Vec::new())),
            // A merged customer's open conversation may have been closed.
            Ok(_) => Ok(Ok(vec![After::ForgetCustomers, After::Reload])),
            Err(StoreError::Duplicate) => Ok(Err(
                "a channel identity belongs to another CRM customer".into(),
            )),
            Err(e) => Err(e),
        }
    }
}

/// A logged-in user of the company's site (the widget's signed token).
pub const WEB_USER: &str = "web_user";

impl CrmRow for VehicleIn {
    const ENTITY: &'static str = "vehicle";
    const KEY_FIELDS: &'static [&'static str] = &["id"];
    fn key(&self) -> String {
        self.id.clone()
    }
    fn version(&self) -> i64 {
        self.version
    }
    fn check(&self) -> Result<(), String> {
        need("id", &self.id, 64)?;
        need("customer", &self.customer, 64)?;
        maybe("plate", &self.plate, 16)?;
        maybe("model", &self.model, 128)?;
        maybe("order_no", &self.order_no, 64)?;
        need("payment_status", &self.payment_status, 32)?;
        need("sale_status", &self.sale_status, 32)?;
        if self
            .details
            .as_ref()
            .is_some_and(|d| d.to_string().len() > 4096)
        {
            return Err("details are larger than 4 KiB".into());
        }
        Ok(())
    }
    async fn prefetch(sync: &Sync<'_>, rows: &[&(usize, Self)]) -> Result<(), StoreError> {
        sync.prefetch_customers(rows.iter().map(|(_, r)| r.customer.clone()).collect())
            .await?;
        Ok(())
    }
    async fn write(
        &self,
        sync: &Sync<'_>,
        txn: &DatabaseTransaction,
    ) -> Result<Result<Vec<After>, String>, StoreError> {
        let Some(customer) = sync.customer_id(txn, &self.customer).await? else {
            return Ok(Err(format!("customer {:?} does not exist", self.customer)));
        };
        db::upsert_vehicle(
            txn,
            &DbVehicle {
                crm_id: self.id.clone(),
                customer,
                plate: self.plate.as_deref().map(normalise_plate),
                model: self.model.clone(),
                order_no: self.order_no.clone(),
                payment_status: self.payment_status.trim().to_owned(),
                payment_updated_at: self.payment_updated_at,
                sale_status: self.sale_status.trim().to_owned(),
                sale_updated_at: self.sale_updated_at,
                details: self.details.as_ref().map(Value::to_string),
            },
        )
        .await?;
        Ok(Ok(Vec::new()))
    }
}

/// A plate as the robot will match it: no spaces or dots, upper case
/// (`沪a·12345` → `沪A12345`).
pub fn normalise_plate(p: &str) -> String {
    p.chars()
        .filter(|c| !c.is_whitespace() && !"·.-".contains(*c))
        .flat_map(char::to_uppercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_numbers_or_timestamps() {
        #[derive(Deserialize)]
        struct V {
            #[serde(deserialize_with = "version")]
            v: i64,
        }
        let v = |j: Value| serde_json::from_value::<V>(json!({ "v": j })).map(|v| v.v);
        assert_eq!(v(json!(7)).unwrap(), 7);
        assert_eq!(v(json!("12")).unwrap(), 12);
        assert_eq!(v(json!("1970-01-01T00:00:01Z")).unwrap(), 1000);
        assert!(v(json!("yesterday")).is_err());
        assert!(v(json!(1.5)).is_err());
    }

    #[test]
    fn a_night_shift_ends_the_next_morning_and_days_follow_the_crm_s_zone() {
        let beijing = offset(8);
        let day = NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
        let (start, end) = day_span(beijing, day).unwrap();
        assert_eq!(start.to_rfc3339(), "2026-12-06T16:00:00+00:00");
        assert_eq!(end - start, TimeDelta::hours(24));
        assert!(parse_time("25:00").is_err());
        assert_eq!(
            parse_time("09:30").unwrap(),
            NaiveTime::from_hms_opt(9, 30, 0).unwrap()
        );
    }

    #[test]
    fn plates_are_compared_without_spaces_dots_or_case() {
        assert_eq!(normalise_plate(" 沪a·12 345"), "沪A12345");
    }

    #[test]
    fn an_unreadable_row_is_named_by_its_key() {
        assert_eq!(
            raw_key(
                &json!({"agent": "a1", "day": "2026-12-07"}),
                &["agent", "day"]
            ),
            Some("a1/2026-12-07".into())
        );
        assert_eq!(raw_key(&json!({"id": 5}), &["id"]), Some("5".into()));
        assert_eq!(raw_key(&json!({}), &["id"]), None);
    }
}
