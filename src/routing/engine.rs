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
//! agent), and reconciled with the database every `routing.reconcile_secs`
//! ([`Router::reload`]). A reload reads the database while decisions go on:
//! what changes meanwhile (loads moved by stored changes, presence, shifts,
//! regions) is journalled and replayed on the fresh snapshot, and slots
//! reserved but not yet stored are carried over, so a reload never makes an
//! agent look freer than they are. At worst a change stored just before the
//! read and reported just after it counts twice until the next reload: an
//! agent then looks busier than they are, never above capacity.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

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

/// A change made while a reload reads the database, replayed on its result.
#[derive(Debug, Clone)]
enum Op {
    /// A stored change moved one conversation to (+1) or from (-1) an agent.
    Load(AgentId, i64),
    Status(AgentId, AgentStatus),
    Shifts(AgentId, Vec<ShiftSpan>),
    Region(String, GroupId),
}

#[derive(Default)]
struct Inner {
    agents: Vec<AgentSnapshot>,
    index: HashMap<AgentId, usize>,
    groups: GroupMap,
    shifts: HashMap<AgentId, Vec<ShiftSpan>>,
    /// Slots reserved by [`Router::decide`] and not yet stored or released
    /// (counted in the agents' load; carried over by a reload).
    pending: HashMap<AgentId, u32>,
    /// Set while a reload reads the database.
    journal: Option<Vec<Op>>,
}

impl Inner {
    fn agent_mut(&mut self, id: AgentId) -> Option<&mut AgentSnapshot> {
        let i = *self.index.get(&id)?;
        self.agents.get_mut(i)
    }

    fn note(&mut self, op: Op) {
        if let Some(j) = &mut self.journal {
            j.push(op);
        }
    }

    fn add_load(&mut self, id: AgentId, delta: i64) {
        if let Some(a) = self.agent_mut(id) {
            a.load = shifted(a.load, delta);
        }
    }

    /// One fewer reservation for `id`; `false` when there was none.
    fn settle(&mut self, id: AgentId) -> bool {
        match self.pending.get_mut(&id) {
            Some(n) if *n > 1 => {
                *n -= 1;
                true
            }
            Some(_) => {
                self.pending.remove(&id);
                true
            }
            None => false,
        }
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Load(id, delta) => self.add_load(id, delta),
            Op::Status(id, status) => {
                if let Some(a) = self.agent_mut(id) {
                    a.status = status;
                }
            }
            Op::Shifts(id, spans) => {
                self.shifts.insert(id, spans);
            }
            Op::Region(region, group) => self.groups.map_region(&region, group),
        }
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

fn shifted(load: u32, delta: i64) -> u32 {
    u32::try_from((i64::from(load) + delta).max(0)).unwrap_or(u32::MAX)
}

/// Where a queue drain may find someone now: the groups with an available
/// agent, and whether anyone at all is available (the global queue).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenScopes {
    pub groups: HashSet<GroupId>,
    pub any: bool,
}

impl OpenScopes {
    /// Whether a conversation waiting in `group`'s queue (`None`: the global
    /// queue) may find an agent now.
    pub fn admits(&self, group: Option<GroupId>) -> bool {
        match group {
            Some(g) => self.groups.contains(&g),
            None => self.any,
        }
    }
}

/// Called with each decision's time (the load tool's histogram).
pub type DecisionObserver = Arc<dyn Fn(Duration) + Send + Sync>;

/// The router (cheap to clone; one per instance).
#[derive(Clone, Default)]
pub struct Router {
    inner: Arc<Mutex<Inner>>,
    require_shifts: bool,
    /// Where decision times go (Prometheus), when set.
    timings: Option<Histogram>,
    observer: Option<DecisionObserver>,
    /// One reload at a time: each journals what changes while it reads.
    reloading: Arc<tokio::sync::Mutex<()>>,
}

impl Router {
    /// An empty router (nobody on duty) until [`Router::replace`].
    pub fn new(require_shifts: bool) -> Self {
        Self {
            require_shifts,
            ..Self::default()
        }
    }

    /// Records each decision's time in `h`.
    pub fn with_timings(mut self, h: Histogram) -> Self {
        self.timings = Some(h);
        self
    }

    /// Also reports each decision's time to `f`.
    pub fn with_observer(mut self, f: DecisionObserver) -> Self {
        self.observer = Some(f);
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic under the lock leaves plain data behind: keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the whole snapshot (start and reconciliation). Slots
    /// reserved and not yet stored are added to the loads read, and what
    /// changed since a [`Router::reload`] began reading is replayed.
    pub fn replace(&self, data: RouterData) {
        let mut inner = self.lock();
        let index = data
            .agents
            .iter()
            .enumerate()
            .map(|(i, a)| (a.id, i))
            .collect();
        let pending = std::mem::take(&mut inner.pending);
        let journal = inner.journal.take().unwrap_or_default();
        *inner = Inner {
            agents: data.agents,
            index,
            groups: data.groups,
            shifts: data.shifts,
            pending: HashMap::new(),
            journal: None,
        };
        for (id, n) in pending {
            if inner.agent_mut(id).is_some() {
                inner.add_load(id, i64::from(n));
                inner.pending.insert(id, n);
            }
        }
        for op in journal {
            inner.apply(op);
        }
    }

    /// Reloads everything from the database (start, reconciliation, tests);
    /// see the module documentation for what happens meanwhile.
    pub async fn reload(
        &self,
        store: &crate::store::Store,
    ) -> Result<(), crate::store::StoreError> {
        let _one = self.reloading.lock().await;
        self.lock().journal = Some(Vec::new());
        match store.router_data(Utc::now()).await {
            Ok(data) => {
                self.replace(data);
                Ok(())
            }
            Err(e) => {
                self.lock().journal = None;
                Err(e)
            }
        }
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
        self.decide_holding(customer, scope, exclude, &HashSet::new(), now, tie_break)
    }

    /// [`Router::decide`], with the `held` agents counted as busy for this
    /// decision only: a queue drain holds back those who took their batch
    /// (`routing.queue_batch_limit`) so a fresh login is not flooded.
    pub fn decide_holding(
        &self,
        customer: &Customer,
        scope: Scope,
        exclude: Option<AgentId>,
        held: &HashSet<AgentId>,
        now: DateTime<Utc>,
        tie_break: u64,
    ) -> Outcome {
        let started = std::time::Instant::now();
        let mut inner = self.lock();
        inner.refresh_shifts(now, self.require_shifts);
        let mut flipped = Vec::new();
        for id in held {
            if let Some(a) = inner.agent_mut(*id)
                && a.status == AgentStatus::Idle
            {
                a.status = AgentStatus::Busy;
                flipped.push(*id);
            }
        }
        let outcome = assign(&Request {
            customer,
            agents: &inner.agents,
            groups: &inner.groups,
            scope,
            exclude,
            tie_break,
        });
        for id in flipped {
            if let Some(a) = inner.agent_mut(id) {
                a.status = AgentStatus::Idle;
            }
        }
        if let super::Decision::Assign { agent, .. } = &outcome.decision
            && let Some(a) = inner.agent_mut(*agent)
        {
            a.load += 1;
            a.last_assigned_at = Some(now);
            *inner.pending.entry(*agent).or_default() += 1;
        }
        drop(inner);
        let took = started.elapsed();
        if let Some(h) = &self.timings {
            h.observe(took.as_secs_f64());
        }
        if let Some(f) = &self.observer {
            f(took);
        }
        outcome
    }

    /// A reservation from [`Router::decide`] that was not used.
    pub fn unreserve(&self, agent: AgentId) {
        let mut inner = self.lock();
        if inner.settle(agent) {
            inner.add_load(agent, -1);
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
        if let Some(f) = from {
            inner.add_load(f, -1);
            inner.note(Op::Load(f, -1));
        }
        if let Some(t) = to {
            // A reservation becomes the stored assignment: already counted.
            if !(reserved == Some(t) && inner.settle(t)) {
                inner.add_load(t, 1);
            }
            inner.note(Op::Load(t, 1));
        }
        if let Some(r) = reserved
            && to != Some(r)
            && inner.settle(r)
        {
            inner.add_load(r, -1);
        }
    }

    /// Sets an agent's presence; `false` when the agent is unknown here.
    pub fn set_status(&self, agent: AgentId, status: AgentStatus) -> bool {
        let mut inner = self.lock();
        inner.note(Op::Status(agent, status));
        match inner.agent_mut(agent) {
            Some(a) => {
                a.status = status;
                true
            }
            None => false,
        }
    }

    /// Replaces one agent's shifts.
    pub fn set_shifts(&self, agent: AgentId, spans: Vec<ShiftSpan>) {
        let mut inner = self.lock();
        inner.note(Op::Shifts(agent, spans.clone()));
        inner.shifts.insert(agent, spans);
    }

    /// Maps a region to a group (admin edit or CRM sync).
    pub fn map_region(&self, region: &str, group: GroupId) {
        let mut inner = self.lock();
        inner.note(Op::Region(region.to_owned(), group));
        inner.groups.map_region(region, group);
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

    /// Where an agent is available now, `held` agents left out (see
    /// [`Router::decide_holding`]): the queues a drain may take from.
    pub fn open_scopes(&self, now: DateTime<Utc>, held: &HashSet<AgentId>) -> OpenScopes {
        let mut inner = self.lock();
        inner.refresh_shifts(now, self.require_shifts);
        let mut open = OpenScopes::default();
        for a in inner
            .agents
            .iter()
            .filter(|a| a.is_available() && !held.contains(&a.id))
        {
            open.any = true;
            open.groups.extend(a.groups.iter().copied());
        }
        open
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
    fn a_reload_keeps_reservations_and_replays_what_changed_while_it_read() {
        let r = router(vec![agent(1, 1, 5), agent(2, 1, 5)]);
        let now = Utc::now();
        let load = |id| r.agent(AgentId(id), now).unwrap().load;
        let Decision::Assign { agent: a, .. } = r
            .decide(&in_group(), Scope::Customer, None, now, 3)
            .decision
        else {
            panic!("assigned")
        };
        let b = if a == AgentId(1) {
            AgentId(2)
        } else {
            AgentId(1)
        };
        // A reload begins reading; meanwhile b is stored with a conversation
        // and goes on break.
        r.lock().journal = Some(Vec::new());
        r.moved(None, Some(b), None);
        r.set_status(b, AgentStatus::Break);
        // What the reload read: nothing assigned yet, everyone idle.
        let mut groups = GroupMap::new();
        groups.add_group(GroupId(1), "上海");
        r.replace(RouterData {
            agents: vec![agent(1, 1, 5), agent(2, 1, 5)],
            groups,
            shifts: HashMap::new(),
        });
        assert_eq!(load(a.0), 1, "the reservation is carried over");
        assert_eq!(load(b.0), 1, "the change made while reading is replayed");
        assert_eq!(r.agent(b, now).unwrap().status, AgentStatus::Break);
        // The reservation is stored later: counted once.
        r.moved(None, Some(a), Some(a));
        assert_eq!(load(a.0), 1);
        r.unreserve(a);
        assert_eq!(load(a.0), 1, "nothing left to release");
    }

    #[test]
    fn held_agents_are_passed_over_for_one_decision() {
        let r = router(vec![agent(1, 1, 5), agent(2, 1, 5)]);
        let now = Utc::now();
        let held: HashSet<_> = [AgentId(1)].into();
        for i in 0..4 {
            let d = r
                .decide_holding(&in_group(), Scope::Customer, None, &held, now, i)
                .decision;
            assert!(
                matches!(
                    d,
                    Decision::Assign {
                        agent: AgentId(2),
                        ..
                    }
                ),
                "{d:?}"
            );
        }
        assert_eq!(r.agent(AgentId(1), now).unwrap().status, AgentStatus::Idle);
        let open = r.open_scopes(now, &held);
        assert!(open.any && open.admits(Some(GroupId(1))) && !open.admits(Some(GroupId(2))));
        let both: HashSet<_> = [AgentId(1), AgentId(2)].into();
        assert!(!r.open_scopes(now, &both).any);
        assert!(matches!(
            r.decide_holding(&in_group(), Scope::Customer, None, &both, now, 1)
                .decision,
            Decision::Queue { .. }
        ));
    }

    #[test]
    fn presence_changes_apply_at_once() {
        let r = router(vec![agent(1, 1, 5)]);
        let now = Utc::now();
        assert!(r.set_status(AgentId(1), AgentStatus::Break));
        assert!(!r.open_scopes(now, &HashSet::new()).any);
        assert!(matches!(
            r.decide(&in_group(), Scope::Customer, None, now, 1)
                .decision,
            Decision::Queue { .. }
        ));
        assert!(!r.set_status(AgentId(9), AgentStatus::Idle));
    }
}
