//! The router: agents' presence, load and shifts held in memory, so a
//! routing decision reads nothing from the database.
//!
//! [`Router::decide`] runs the pure policy ([`assign`]) on the in-memory
//! snapshot under one lock and **reserves** the chosen agent's slot before
//! the lock is released: two decisions on this instance never hand one free
//! slot to two customers. The caller then claims the conversation in the
//! database with an optimistic check (`queued → assigned`), which keeps two
//! instances from assigning one conversation twice, and reports back:
//! [`Router::moved`] after a stored change, [`Router::unreserve`] when the
//! claim lost.
//!
//! Consistency with the database: the snapshot is loaded at start, kept
//! current by this instance's own changes and by other instances' changes
//! heard on the bus (presence, `ConversationChanged` with the previous
//! agent), and reconciled with the database every `routing.reconcile_secs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use prometheus_client::metrics::histogram::Histogram;

use super::{
    AgentSnapshot, AgentStatus, Customer, GroupMap, Outcome, Request, Scope, Shift, assign,
};
use crate::ids::{AgentId, GroupId};

/// A scheduled shift: `[start, end)`.
pub type ShiftSpan = (DateTime<Utc>, DateTime<Utc>);

/// Everything the router loads from the database.
#[derive(Debug, Clone, Default)]
pub struct RouterData {
    pub agents: Vec<AgentSnapshot>,
    pub groups: GroupMap,
    /// Upcoming and current shifts per agent.
    pub shifts: HashMap<AgentId, Vec<ShiftSpan>>,
}

#[derive(Default)]
struct Inner {
    agents: Vec<AgentSnapshot>,
    index: HashMap<AgentId, usize>,
    groups: GroupMap,
    shifts: HashMap<AgentId, Vec<ShiftSpan>>,
}

impl Inner {
    fn agent_mut(&mut self, id: AgentId) -> Option<&mut AgentSnapshot> {
        let i = *self.index.get(&id)?;
        self.agents.get_mut(i)
    }

    /// Evaluates every agent's shift at `now`.
    fn refresh_shifts(&mut self, now: DateTime<Utc>, require_shifts: bool) {
        for a in &mut self.agents {
            a.shift = shift_at(self.shifts.get(&a.id), now, require_shifts);
        }
    }
}

/// Whether an agent with these shifts is on shift at `now`.
pub fn shift_at(spans: Option<&Vec<ShiftSpan>>, now: DateTime<Utc>, require_shifts: bool) -> Shift {
    match spans {
        Some(spans) if !spans.is_empty() => {
            if spans.iter().any(|(s, e)| *s <= now && now < *e) {
                Shift::On
            } else {
                Shift::Off
            }
        }
        _ if require_shifts => Shift::Off,
        _ => Shift::On,
    }
}

/// The router (cheap to clone; one per instance).
#[derive(Clone, Default)]
pub struct Router {
    inner: Arc<Mutex<Inner>>,
    require_shifts: bool,
    /// Where decision times go (Prometheus), when set.
    timings: Option<Histogram>,
}

impl Router {
    /// An empty router (nobody on duty) until [`Router::replace`].
    pub fn new(require_shifts: bool) -> Self {
        Self {
            inner: Arc::default(),
            require_shifts,
            timings: None,
        }
    }

    /// Records each decision's time in `h`.
    pub fn with_timings(mut self, h: Histogram) -> Self {
        self.timings = Some(h);
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic under the lock leaves plain data behind: keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the whole snapshot (start and reconciliation). Reservations
    /// made since `data` was read are lost: the next reconciliation or event
    /// corrects any difference.
    pub fn replace(&self, data: RouterData) {
        let mut inner = self.lock();
        let index = data
            .agents
            .iter()
            .enumerate()
            .map(|(i, a)| (a.id, i))
            .collect();
        *inner = Inner {
            agents: data.agents,
            index,
            groups: data.groups,
            shifts: data.shifts,
        };
    }

    /// Reloads everything from the database (start, reconciliation, tests).
    pub async fn reload(
        &self,
        store: &crate::store::Store,
    ) -> Result<(), crate::store::StoreError> {
        self.replace(store.router_data(Utc::now()).await?);
        Ok(())
    }

    /// Decides for one customer and reserves the chosen agent's slot (load
    /// + 1, last assignment now). See the module documentation.
    pub fn decide(
        &self,
        customer: &Customer,
        scope: Scope,
        exclude: Option<AgentId>,
        now: DateTime<Utc>,
        tie_break: u64,
    ) -> Outcome {
        let started = std::time::Instant::now();
        let mut inner = self.lock();
        inner.refresh_shifts(now, self.require_shifts);
        let outcome = assign(&Request {
            customer,
            agents: &inner.agents,
            groups: &inner.groups,
            scope,
            exclude,
            tie_break,
        });
        if let super::Decision::Assign { agent, .. } = &outcome.decision
            && let Some(a) = inner.agent_mut(*agent)
        {
            a.load += 1;
            a.last_assigned_at = Some(now);
        }
        drop(inner);
        if let Some(h) = &self.timings {
            h.observe(started.elapsed().as_secs_f64());
        }
        outcome
    }

    /// A reservation from [`Router::decide`] that was not used.
    pub fn unreserve(&self, agent: AgentId) {
        if let Some(a) = self.lock().agent_mut(agent) {
            a.load = a.load.saturating_sub(1);
        }
    }

    /// A stored change moved a conversation from agent `from` to agent `to`
    /// (either may be `None`). `reserved` is the agent [`Router::decide`]
    /// already counted, if any.
    pub fn moved(&self, from: Option<AgentId>, to: Option<AgentId>, reserved: Option<AgentId>) {
        if from == to {
            if let Some(r) = reserved {
                self.unreserve(r);
            }
            return;
        }
        let mut inner = self.lock();
        if let Some(f) = from
            && let Some(a) = inner.agent_mut(f)
        {
            a.load = a.load.saturating_sub(1);
        }
        if let Some(t) = to
            && reserved != Some(t)
            && let Some(a) = inner.agent_mut(t)
        {
            a.load += 1;
        }
        if let Some(r) = reserved
            && to != Some(r)
            && let Some(a) = inner.agent_mut(r)
        {
            a.load = a.load.saturating_sub(1);
        }
    }

    /// Sets an agent's presence; `false` when the agent is unknown here.
    pub fn set_status(&self, agent: AgentId, status: AgentStatus) -> bool {
        match self.lock().agent_mut(agent) {
            Some(a) => {
                a.status = status;
                true
            }
            None => false,
        }
    }

    /// Adds or replaces one agent (a new agent, a changed capacity or group).
    /// Their load is kept when `keep_load`.
    pub fn upsert(&self, mut agent: AgentSnapshot, keep_load: bool) {
        let mut inner = self.lock();
        match inner.index.get(&agent.id).copied() {
            Some(i) => {
                if keep_load {
                    agent.load = inner.agents[i].load;
                    agent.last_assigned_at = inner.agents[i].last_assigned_at;
                }
                inner.agents[i] = agent;
            }
            None => {
                let i = inner.agents.len();
                inner.index.insert(agent.id, i);
                inner.agents.push(agent);
            }
        }
    }

    /// Replaces one agent's shifts.
    pub fn set_shifts(&self, agent: AgentId, spans: Vec<ShiftSpan>) {
        self.lock().shifts.insert(agent, spans);
    }

    /// Maps a region to a group (admin edit or CRM sync).
    pub fn map_region(&self, region: &str, group: GroupId) {
        self.lock().groups.map_region(region, group);
    }

    /// One agent as routing sees them at `now`.
    pub fn agent(&self, id: AgentId, now: DateTime<Utc>) -> Option<AgentSnapshot> {
        let inner = self.lock();
        let mut a = inner.agents.get(*inner.index.get(&id)?)?.clone();
        a.shift = shift_at(inner.shifts.get(&id), now, self.require_shifts);
        Some(a)
    }

    /// Every agent as routing sees them at `now` (supervisor views, queue
    /// drains, tests).
    pub fn agents(&self, now: DateTime<Utc>) -> Vec<AgentSnapshot> {
        let mut inner = self.lock();
        inner.refresh_shifts(now, self.require_shifts);
        inner.agents.clone()
    }

    /// Whether any agent can take a customer now (a drain is worth running).
    pub fn anyone_available(&self, now: DateTime<Utc>) -> bool {
        let mut inner = self.lock();
        inner.refresh_shifts(now, self.require_shifts);
        inner.agents.iter().any(AgentSnapshot::is_available)
    }

    /// The group map (names and region → group).
    pub fn groups(&self) -> GroupMap {
        self.lock().groups.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::{Decision, Employment};

    fn agent(id: i64, group: i64, capacity: u32) -> AgentSnapshot {
        AgentSnapshot {
            id: AgentId(id),
            groups: vec![GroupId(group)],
            status: AgentStatus::Idle,
            shift: Shift::On,
            employment: Employment::Active,
            load: 0,
            capacity,
            last_assigned_at: None,
            bound_customers: 0,
        }
    }

    fn router(agents: Vec<AgentSnapshot>) -> Router {
        let r = Router::new(false);
        let mut groups = GroupMap::new();
        groups.add_group(GroupId(1), "上海");
        r.replace(RouterData {
            agents,
            groups,
            shifts: HashMap::new(),
        });
        r
    }

    fn in_group() -> Customer {
        Customer {
            dedicated_agent: None,
            group: Some(GroupId(1)),
            region: None,
        }
    }

    #[test]
    fn decisions_reserve_slots_so_capacity_is_never_exceeded() {
        let r = router(vec![agent(1, 1, 2)]);
        let now = Utc::now();
        let mut assigned = 0;
        for i in 0..5 {
            match r
                .decide(&in_group(), Scope::Customer, None, now, i)
                .decision
            {
                Decision::Assign { agent, .. } => {
                    assert_eq!(agent, AgentId(1));
                    assigned += 1;
                }
                Decision::Queue { .. } => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(assigned, 2);
        assert_eq!(r.agent(AgentId(1), now).unwrap().load, 2);
        r.unreserve(AgentId(1));
        assert_eq!(r.agent(AgentId(1), now).unwrap().load, 1);
    }

    #[test]
    fn moved_counts_each_side_once() {
        let r = router(vec![agent(1, 1, 5), agent(2, 1, 5)]);
        let now = Utc::now();
        let load = |id| r.agent(AgentId(id), now).unwrap().load;
        // A reserved assignment that was stored: counted once.
        let Decision::Assign { agent: a, .. } = r
            .decide(&in_group(), Scope::Customer, None, now, 7)
            .decision
        else {
            panic!("assigned")
        };
        r.moved(None, Some(a), Some(a));
        assert_eq!(load(a.0), 1);
        // A transfer from a to b.
        let b = if a == AgentId(1) {
            AgentId(2)
        } else {
            AgentId(1)
        };
        r.moved(Some(a), Some(b), None);
        assert_eq!((load(a.0), load(b.0)), (0, 1));
        // A close.
        r.moved(Some(b), None, None);
        assert_eq!(load(b.0), 0);
        // Never below zero.
        r.moved(Some(b), None, None);
        assert_eq!(load(b.0), 0);
    }

    #[test]
    fn shifts_decide_who_is_on_duty() {
        let now = Utc::now();
        let hour = chrono::TimeDelta::hours(1);
        let spans = vec![(now - hour, now + hour)];
        assert_eq!(shift_at(Some(&spans), now, true), Shift::On);
        assert_eq!(shift_at(Some(&spans), now + hour, false), Shift::Off);
        assert_eq!(shift_at(None, now, false), Shift::On);
        assert_eq!(shift_at(None, now, true), Shift::Off);
        assert_eq!(shift_at(Some(&vec![]), now, true), Shift::Off);

        let r = router(vec![agent(1, 1, 5)]);
        r.set_shifts(AgentId(1), vec![(now + hour, now + hour * 2)]);
        assert!(matches!(
            r.decide(&in_group(), Scope::Customer, None, now, 1)
                .decision,
            Decision::NobodyOnDuty { .. }
        ));
        assert!(matches!(
            r.decide(&in_group(), Scope::Customer, None, now + hour, 1)
                .decision,
            Decision::Assign { .. }
        ));
    }

    #[test]
    fn presence_changes_apply_at_once() {
        let r = router(vec![agent(1, 1, 5)]);
        let now = Utc::now();
        assert!(r.set_status(AgentId(1), AgentStatus::Break));
        assert!(!r.anyone_available(now));
        assert!(matches!(
            r.decide(&in_group(), Scope::Customer, None, now, 1)
                .decision,
            Decision::Queue { .. }
        ));
        assert!(!r.set_status(AgentId(9), AgentStatus::Idle));
    }
}
