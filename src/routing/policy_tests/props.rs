//! `queue_take`, and property tests. Whatever the snapshot: a chosen agent
//! is in it, available, under capacity, not excluded and in scope; the queue
//! is used only when nobody in scope is free, "nobody on duty" only when
//! nobody in scope is on duty; rebinds go to an active agent of the group;
//! an agent never takes more than their free capacity, the batch or the
//! queue.

use chrono::Duration;
use proptest::prelude::*;

use super::*;

#[test]
fn queue_take_is_bounded_by_capacity_batch_and_queue() {
    let a = with_load(agent(1, SH), 1); // capacity 5: 4 free
    assert_eq!(queue_take(&a, 10, 3), 3, "batch limit");
    assert_eq!(queue_take(&a, 10, 9), 4, "free capacity");
    assert_eq!(queue_take(&a, 2, 9), 2, "queue length");
    assert_eq!(queue_take(&a, usize::MAX, u32::MAX), 4);
    assert_eq!(queue_take(&a, 0, 9), 0);
    assert_eq!(
        queue_take(&with_load(agent(1, SH), 7), 10, 9),
        0,
        "over capacity"
    );
    for status in [AgentStatus::Busy, AgentStatus::Break, AgentStatus::Offline] {
        assert_eq!(queue_take(&with_status(agent(1, SH), status), 10, 9), 0);
    }
    assert_eq!(
        queue_take(
            &AgentSnapshot {
                shift: Shift::Off,
                ..agent(1, SH)
            },
            10,
            9
        ),
        0
    );
}

fn arb_agent(id: i64) -> impl Strategy<Value = AgentSnapshot> {
    let groups =
        proptest::collection::vec(prop_oneof![Just(SH), Just(BJ), Just(GroupId(30))], 0..3);
    let status = prop_oneof![
        Just(AgentStatus::Idle),
        Just(AgentStatus::Busy),
        Just(AgentStatus::Break),
        Just(AgentStatus::Offline)
    ];
    let shift = prop_oneof![3 => Just(Shift::On), 1 => Just(Shift::Off)];
    let employment = prop_oneof![5 => Just(Employment::Active), 1 => Just(Employment::Departed)];
    (
        groups,
        status,
        shift,
        employment,
        0u32..6,
        0u32..6,
        proptest::option::of(0i64..5),
        0u32..10,
    )
        .prop_map(
            move |(groups, status, shift, employment, load, capacity, last, bound_customers)| {
                AgentSnapshot {
                    id: AgentId(id),
                    groups,
                    status,
                    shift,
                    employment,
                    load,
                    capacity,
                    last_assigned_at: last.map(|m| t0() + Duration::minutes(m)),
                    bound_customers,
                }
            },
        )
}

fn arb_case() -> impl Strategy<Value = (Customer, Vec<AgentSnapshot>, Scope, Option<i64>, u64)> {
    let agents = (0usize..8).prop_flat_map(|n| (1..=n as i64).map(arb_agent).collect::<Vec<_>>());
    let group = proptest::option::of(prop_oneof![
        Just(SH),
        Just(BJ),
        Just(GroupId(30)),
        Just(GroupId(40))
    ]);
    let region = proptest::option::of(prop_oneof![Just("上海"), Just("北京"), Just("拉萨")]);
    let scope = prop_oneof![3 => Just(Scope::Customer), 1 => Just(Scope::Group(SH)), 1 => Just(Scope::Group(GroupId(30)))];
    (
        proptest::option::of(1i64..10),
        group,
        region,
        agents,
        scope,
        proptest::option::of(1i64..10),
        any::<u64>(),
    )
        .prop_map(|(dedicated, group, region, agents, scope, exclude, tie)| {
            (
                customer(dedicated, group, region),
                agents,
                scope,
                exclude,
                tie,
            )
        })
}

proptest! {
    #[test]
    fn decisions_are_sound((c, agents, scope, exclude, tie) in arb_case()) {
        let o = run_with(&c, &agents, scope, exclude, tie);
        prop_assert_eq!(&o, &run_with(&c, &agents, scope, exclude, tie), "deterministic");
        let group = match &o.decision {
            Decision::Assign { group, .. } | Decision::Queue { group, .. } | Decision::NobodyOnDuty { group, .. } => *group,
        };
        if let Scope::Group(t) = scope {
            prop_assert_eq!(group, Some(t));
        } else if let Some(g) = c.group {
            prop_assert_eq!(group, Some(g));
        }
        let in_scope = |a: &&AgentSnapshot| group.is_none_or(|g| a.in_group(g));
        let free = |a: &&AgentSnapshot| a.is_available() && exclude != Some(a.id.0);
        match &o.decision {
            Decision::Assign { agent, reason, .. } => {
                let chosen = agents.iter().find(|a| a.id == *agent);
                prop_assert!(chosen.is_some(), "an agent of the snapshot");
                let Some(chosen) = chosen else { return Ok(()) };
                prop_assert!(chosen.is_available() && chosen.load < chosen.capacity);
                prop_assert!(exclude != Some(agent.0));
                prop_assert!(in_scope(&chosen), "in scope {group:?}: {chosen:?}");
                if *reason == DecisionReason::Dedicated {
                    prop_assert_eq!(Some(*agent), c.dedicated_agent);
                }
            }
            Decision::Queue { .. } => {
                prop_assert!(!agents.iter().filter(in_scope).any(|a| free(&a)), "queued while someone is free");
                prop_assert!(agents.iter().filter(in_scope).any(|a| a.is_on_duty()));
            }
            Decision::NobodyOnDuty { .. } => {
                prop_assert!(!agents.iter().filter(in_scope).any(|a| a.is_on_duty()));
            }
        }
        if let Some(r) = o.rebind {
            prop_assert_eq!(Some(r.from), c.dedicated_agent);
            prop_assert!(r.from != r.to);
            let to = agents.iter().find(|a| a.id == r.to);
            prop_assert!(to.is_some_and(|a| a.employment == Employment::Active && r.group.is_none_or(|g| a.in_group(g))));
        }
    }
}

proptest! {
    #[test]
    fn queue_take_never_floods(a in arb_agent(1), queued in 0usize..20, batch in 0u32..8) {
        let n = queue_take(&a, queued, batch);
        prop_assert!(n <= batch && n as usize <= queued);
        prop_assert!(n <= a.capacity.saturating_sub(a.load));
        if !a.is_available() {
            prop_assert_eq!(n, 0);
        }
    }
}
