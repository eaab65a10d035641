//! The assignment policy: which agent serves a customer who wants a human,
//! as a pure function of a snapshot. No I/O, no clock, no randomness of its
//! own: the caller passes the agents' presence and load, the city groups, and
//! a random number for ties, so every decision can be replayed in a test.
//!
//! [`assign`] applies the company's rules in this order:
//!
//! 1. **Dedicated agent.** A customer bound to an agent (from the CRM, or by
//!    Kefu at first assignment) gets that agent when they are *available*:
//!    on shift, status idle, load under capacity, not departed
//!    ([`AgentSnapshot::availability`]).
//! 2. **Rebind.** A dedicated agent who has left (departed, or no longer
//!    known) or has been moved out of the customer's group is replaced: Kefu
//!    binds the customer to the active member of the group with the fewest
//!    bound customers ([`Outcome::rebind`], for the CRM), and assigns them
//!    when available. The binding never moves for any other reason.
//! 3. **Same group.** Otherwise another available agent of the customer's
//!    group: least current load, ties by the longest time since their last
//!    assignment (never assigned counts as longest), then by the random value.
//! 4. **First contact.** No dedicated agent: the customer's group (CRM), else
//!    their region through the [`GroupMap`], and the same choice within it.
//! 5. **No group** for the region, or no region at all: any available agent,
//!    least loaded, ties random.
//! 6. Nobody available in scope: [`Decision::Queue`] when someone of the scope
//!    is on duty (on shift and not offline: busy or on break will free up);
//!    [`Decision::NobodyOnDuty`] when nobody is (a leave-a-message ticket).
//!
//! The customer's group is, in order: their CRM group; else their dedicated
//! agent's home group (first listed); else their region's group. A transfer
//! ([`Scope::Group`]) looks only in the target group (the dedicated agent
//! first, if they are in it); [`Request::exclude`] keeps a re-routed
//! conversation away from the agent it leaves.
//!
//! There is no overflow from one city group to another: a group whose agents
//! are all busy queues its customers (a supervisor can transfer them); a
//! group with nobody on duty gets tickets even if another city has agents.
//! Every decision carries a [`DecisionReason`] rendered in Chinese and English.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::region::normalise_place;
use crate::ids::{AgentId, GroupId};

mod explain;

pub use explain::{DecisionReason, GroupLabel, NotAvailable};

/// What an agent said they are doing (their console's presence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Takes new customers.
    Idle,
    /// Keeps current customers, takes no new ones.
    Busy,
    /// Keeps current customers, takes no new ones.
    Break,
    /// Takes none; their open conversations are re-routed.
    Offline,
}

/// Whether the agent is inside a scheduled shift now (shifts come from the
/// CRM; the caller evaluates them at `now`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shift {
    On,
    Off,
}

/// Whether the agent still works here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Employment {
    Active,
    /// Left the company: never assigned, and their customers are rebound.
    Departed,
}

/// One agent as routing sees them at the moment of the decision.
///
/// The snapshot given to [`assign`] must hold every agent of the groups in
/// play, offline ones included: an agent missing from it is taken to have
/// left, and "nobody on duty" is judged from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSnapshot {
    pub id: AgentId,
    /// City groups; the first is the agent's home group.
    pub groups: Vec<GroupId>,
    pub status: AgentStatus,
    pub shift: Shift,
    pub employment: Employment,
    /// Open conversations assigned to them now.
    pub load: u32,
    /// Most conversations they may hold at once.
    pub capacity: u32,
    pub last_assigned_at: Option<DateTime<Utc>>,
    /// Customers bound to them as dedicated agent (used to spread rebinds).
    pub bound_customers: u32,
}

impl AgentSnapshot {
    /// Whether they can take a new customer now, and if not, the first reason
    /// why not (departed, off shift, offline, on break, busy, at capacity).
    pub fn availability(&self) -> Result<(), NotAvailable> {
        match (self.employment, self.shift, self.status) {
            (Employment::Departed, _, _) => Err(NotAvailable::Left),
            (_, Shift::Off, _) => Err(NotAvailable::OffShift),
            (_, _, AgentStatus::Offline) => Err(NotAvailable::Offline),
            (_, _, AgentStatus::Break) => Err(NotAvailable::OnBreak),
            (_, _, AgentStatus::Busy) => Err(NotAvailable::Busy),
            (_, _, AgentStatus::Idle) if self.load >= self.capacity => {
                Err(NotAvailable::AtCapacity)
            }
            (_, _, AgentStatus::Idle) => Ok(()),
        }
    }

    /// Available: see [`AgentSnapshot::availability`].
    pub fn is_available(&self) -> bool {
        self.availability().is_ok()
    }

    /// On duty: still employed, on shift and not offline. Busy agents and
    /// agents on break are on duty (customers queue for them).
    pub fn is_on_duty(&self) -> bool {
        self.employment == Employment::Active
            && self.shift == Shift::On
            && self.status != AgentStatus::Offline
    }

    /// Whether they belong to `group`.
    pub fn in_group(&self, group: GroupId) -> bool {
        self.groups.contains(&group)
    }

    fn home_group(&self) -> Option<GroupId> {
        self.groups.first().copied()
    }
}

/// The city groups: their names (for explanations) and the region → group
/// map. Data from the CRM, editable by admins; never code.
///
/// Regions are compared after [`normalise_place`] (`上海市` and `上海` are one
/// key) and ASCII lower-casing (`Shanghai` = `shanghai`).
#[derive(Debug, Clone, Default)]
pub struct GroupMap {
    names: HashMap<GroupId, String>,
    regions: HashMap<String, GroupId>,
}

impl GroupMap {
    pub fn new() -> Self {
        Self::default()
    }

    /// Names a group (replacing an earlier name).
    pub fn add_group(&mut self, id: GroupId, name: impl Into<String>) {
        self.names.insert(id, name.into());
    }

    /// Maps a region to a group (a region has at most one group).
    pub fn map_region(&mut self, region: &str, group: GroupId) {
        self.regions.insert(region_key(region), group);
    }

    /// The group that serves `region`, if any.
    pub fn group_for_region(&self, region: &str) -> Option<GroupId> {
        self.regions.get(&region_key(region)).copied()
    }

    /// The group's id and name (`#7` when unnamed).
    pub fn label(&self, id: GroupId) -> GroupLabel {
        let name = self
            .names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("#{id}"));
        GroupLabel { id, name }
    }
}

/// The key a region is mapped under: `上海市` and `上海` are one.
pub(crate) fn region_key(region: &str) -> String {
    normalise_place(region).to_ascii_lowercase()
}

/// The customer being routed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Customer {
    pub dedicated_agent: Option<AgentId>,
    /// Their city group from the CRM, if known.
    pub group: Option<GroupId>,
    /// Their region (CRM record, IP address, LOCATION event or menu choice).
    pub region: Option<String>,
}

/// Where to look for an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The customer's own rules: dedicated agent, group, region.
    Customer,
    /// A transfer to a group: the dedicated agent if they are in it and
    /// available, else the group's least loaded agent.
    Group(GroupId),
}

/// Everything [`assign`] decides from.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub customer: &'a Customer,
    pub agents: &'a [AgentSnapshot],
    pub groups: &'a GroupMap,
    pub scope: Scope,
    /// An agent not to choose: the one the conversation is being re-routed
    /// away from (offline, reply timeout, transfer).
    pub exclude: Option<AgentId>,
    /// A random number for ties; any value is valid.
    pub tie_break: u64,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Give the conversation to `agent`.
    Assign {
        agent: AgentId,
        group: Option<GroupId>,
        reason: DecisionReason,
    },
    /// Nobody available in scope but someone is on duty: wait in `group`'s
    /// queue (the global queue when `None`).
    Queue {
        group: Option<GroupId>,
        reason: DecisionReason,
    },
    /// Nobody of the scope is on duty: tell the customer and open a
    /// leave-a-message ticket for `agent` (the dedicated agent, possibly just
    /// rebound) or else for `group`, for the next shift.
    NobodyOnDuty {
        group: Option<GroupId>,
        agent: Option<AgentId>,
        reason: DecisionReason,
    },
}

/// A binding to record (and report to the CRM): the customer's dedicated
/// agent changes from `from` to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rebind {
    pub from: AgentId,
    pub to: AgentId,
    /// The group rebound within; `None` when no group is known and the
    /// customer was rebound to the agent who now serves them.
    pub group: Option<GroupId>,
}

/// The result of [`assign`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub decision: Decision,
    /// Set when the dedicated agent has left or changed group.
    pub rebind: Option<Rebind>,
}

/// How the scope was found (before knowing whether anyone is free in it).
enum Basis {
    Transfer(GroupId),
    CustomerGroup(GroupId),
    DedicatedGroup(GroupId),
    Region(String, GroupId),
    UnmappedRegion(String),
    NoRegion,
}

impl Basis {
    fn group(&self) -> Option<GroupId> {
        match self {
            Basis::Transfer(g)
            | Basis::CustomerGroup(g)
            | Basis::DedicatedGroup(g)
            | Basis::Region(_, g) => Some(*g),
            Basis::UnmappedRegion(_) | Basis::NoRegion => None,
        }
    }
}

/// Applies the policy (see the module documentation).
pub fn assign(req: &Request<'_>) -> Outcome {
    let customer = req.customer;
    let find = |id: AgentId| req.agents.iter().find(|a| a.id == id);
    let dedicated = customer.dedicated_agent.map(|id| (id, find(id)));
    let region_group = || {
        let region = customer.region.as_deref()?;
        Some((region, req.groups.group_for_region(region)))
    };

    // Where the customer belongs: CRM group, else the dedicated agent's home
    // group, else the region's group.
    let home = match customer.group {
        Some(g) => Basis::CustomerGroup(g),
        None => match dedicated.and_then(|(_, a)| a?.home_group()) {
            Some(g) => Basis::DedicatedGroup(g),
            None => match region_group() {
                Some((region, Some(g))) => Basis::Region(region.to_owned(), g),
                Some((region, None)) => Basis::UnmappedRegion(region.to_owned()),
                None => Basis::NoRegion,
            },
        },
    };
    // Rebinds happen within the home group, even during a transfer.
    let home_group = home.group();
    let basis = match req.scope {
        Scope::Customer => home,
        Scope::Group(g) => Basis::Transfer(g),
    };

    // The dedicated agent: assigned when available and in scope.
    let verdict = dedicated.map(|(id, agent)| {
        let verdict = match agent {
            None => Err(NotAvailable::Left),
            Some(a) if a.employment == Employment::Departed => Err(NotAvailable::Left),
            Some(a) if customer.group.is_some_and(|g| !a.in_group(g)) => {
                Err(NotAvailable::MovedGroup)
            }
            Some(_) if req.exclude == Some(id) => Err(NotAvailable::Released),
            Some(a) if matches!(req.scope, Scope::Group(t) if !a.in_group(t)) => {
                Err(NotAvailable::OutsideTarget)
            }
            Some(a) => a.availability().map(|()| a),
        };
        (id, verdict)
    });
    if let Some((_, Ok(agent))) = verdict {
        // Their group, when the scope is one they belong to (a region's
        // group says nothing about a customer's own agent).
        let group = basis.group().filter(|g| agent.in_group(*g));
        return Outcome {
            decision: Decision::Assign {
                agent: agent.id,
                group,
                reason: DecisionReason::Dedicated,
            },
            rebind: None,
        };
    }

    // A dedicated agent who left or changed group is replaced within the
    // customer's group: fewest bound customers first.
    let mut rebind = None;
    if let Some((from, Err(why))) = verdict
        && why.needs_rebind()
        && let Some(group) = home_group
    {
        let to = best_by(
            req.agents.iter().filter(|a| {
                a.id != from && a.employment == Employment::Active && a.in_group(group)
            }),
            req.tie_break,
            |a| a.bound_customers,
        );
        rebind = to.map(|to| Rebind {
            from,
            to: to.id,
            group: Some(group),
        });
        if let Some(to) = to
            && req.scope == Scope::Customer
            && req.exclude != Some(to.id)
            && to.is_available()
        {
            return Outcome {
                decision: Decision::Assign {
                    agent: to.id,
                    group: Some(group),
                    reason: DecisionReason::NewDedicated { previous: why },
                },
                rebind,
            };
        }
    }

    let reason = match (&basis, verdict) {
        (Basis::Transfer(g), _) => DecisionReason::TransferGroup {
            group: req.groups.label(*g),
        },
        (Basis::CustomerGroup(g) | Basis::DedicatedGroup(g), Some((_, Err(why)))) => {
            DecisionReason::SameGroup {
                group: req.groups.label(*g),
                dedicated: why,
            }
        }
        (Basis::CustomerGroup(g) | Basis::DedicatedGroup(g), _) => DecisionReason::CustomerGroup {
            group: req.groups.label(*g),
        },
        (Basis::Region(region, g), _) => DecisionReason::Region {
            region: region.clone(),
            group: req.groups.label(*g),
        },
        (Basis::UnmappedRegion(region), _) => DecisionReason::UnmappedRegion {
            region: region.clone(),
        },
        (Basis::NoRegion, _) => DecisionReason::NoRegion,
    };

    let group = basis.group();
    let in_scope = |a: &&AgentSnapshot| group.is_none_or(|g| a.in_group(g));
    let free = req
        .agents
        .iter()
        .filter(in_scope)
        .filter(|a| req.exclude != Some(a.id) && a.is_available());
    // Within a group: least load, then longest since last assignment (None
    // sorts first), then random. Anywhere: least load, then random.
    let chosen = match group {
        Some(_) => best_by(free, req.tie_break, |a| (a.load, a.last_assigned_at)),
        None => best_by(free, req.tie_break, |a| a.load),
    };

    if let Some(agent) = chosen {
        // Without a group to rebind within, the departed agent's customer is
        // bound to whoever serves them now, as at a first assignment.
        if rebind.is_none()
            && let Some((from, Err(why))) = verdict
            && why.needs_rebind()
            && group.is_none()
        {
            rebind = Some(Rebind {
                from,
                to: agent.id,
                group: None,
            });
        }
        return Outcome {
            decision: Decision::Assign {
                agent: agent.id,
                group,
                reason,
            },
            rebind,
        };
    }

    let decision = if req.agents.iter().filter(in_scope).any(|a| a.is_on_duty()) {
        Decision::Queue { group, reason }
    } else {
        // The ticket goes to the dedicated agent (or their replacement),
        // except on a transfer to a group they are not in.
        let agent = match verdict {
            Some((_, Err(why))) if why.needs_rebind() => rebind
                .filter(|_| req.scope == Scope::Customer)
                .map(|r| r.to),
            Some((_, Err(NotAvailable::OutsideTarget))) | Some((_, Ok(_))) | None => None,
            Some((id, Err(_))) => Some(id),
        };
        Decision::NobodyOnDuty {
            group,
            agent,
            reason,
        }
    };
    Outcome { decision, rebind }
}

/// How many queued conversations an agent who became idle takes at once:
/// none unless available; otherwise up to their free capacity, the batch
/// limit (so a fresh login is not flooded) and the queue's length.
pub fn queue_take(agent: &AgentSnapshot, queued: usize, batch_limit: u32) -> u32 {
    if !agent.is_available() {
        return 0;
    }
    let queued = u32::try_from(queued).unwrap_or(u32::MAX);
    agent
        .capacity
        .saturating_sub(agent.load)
        .min(batch_limit)
        .min(queued)
}

/// The agent with the smallest `key`, ties broken by a per-agent
/// pseudo-random rank derived from `tie_break`: one pass, no allocation,
/// and independent of the snapshot's order.
fn best_by<'a, K: Ord>(
    agents: impl Iterator<Item = &'a AgentSnapshot>,
    tie_break: u64,
    key: impl Fn(&AgentSnapshot) -> K,
) -> Option<&'a AgentSnapshot> {
    agents.min_by_key(|a| (key(a), mix(a.id, tie_break)))
}

/// splitmix64's finaliser over the agent id and the random value.
fn mix(id: AgentId, tie_break: u64) -> u64 {
    let mut z = (id.0 as u64) ^ tie_break.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
