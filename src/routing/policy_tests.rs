//! Tests of the assignment policy: one per rule and its reason, ties,
//! capacity, shifts, rebinds, queue versus nobody on duty, and in `props`
//! `queue_take` and property tests over random snapshots.

use super::assign::*;
use crate::ids::{AgentId, GroupId};
use chrono::{DateTime, Duration, TimeZone, Utc};

mod props;

const SH: GroupId = GroupId(10);
const BJ: GroupId = GroupId(20);

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0)
        .single()
        .unwrap_or_default()
}

fn agent(id: i64, group: GroupId) -> AgentSnapshot {
    AgentSnapshot {
        id: AgentId(id),
        groups: vec![group],
        status: AgentStatus::Idle,
        shift: Shift::On,
        employment: Employment::Active,
        load: 0,
        capacity: 5,
        last_assigned_at: None,
        bound_customers: 0,
    }
}

fn with_status(mut a: AgentSnapshot, status: AgentStatus) -> AgentSnapshot {
    a.status = status;
    a
}

fn with_load(mut a: AgentSnapshot, load: u32) -> AgentSnapshot {
    a.load = load;
    a
}

fn groups() -> GroupMap {
    let mut g = GroupMap::new();
    g.add_group(SH, "上海");
    g.add_group(BJ, "北京");
    g.map_region("上海市", SH);
    g.map_region("北京", BJ);
    g
}

fn customer(dedicated: Option<i64>, group: Option<GroupId>, region: Option<&str>) -> Customer {
    Customer {
        dedicated_agent: dedicated.map(AgentId),
        group,
        region: region.map(str::to_owned),
    }
}

fn run_with(
    c: &Customer,
    agents: &[AgentSnapshot],
    scope: Scope,
    exclude: Option<i64>,
    tie: u64,
) -> Outcome {
    let groups = groups();
    assign(&Request {
        customer: c,
        agents,
        groups: &groups,
        scope,
        exclude: exclude.map(AgentId),
        tie_break: tie,
    })
}

fn run(c: &Customer, agents: &[AgentSnapshot]) -> Outcome {
    run_with(c, agents, Scope::Customer, None, 0)
}

fn assigned(o: &Outcome) -> Option<i64> {
    match o.decision {
        Decision::Assign { agent, .. } => Some(agent.0),
        _ => None,
    }
}

#[test]
fn dedicated_agent_when_available() {
    let agents = [agent(1, SH), with_load(agent(2, SH), 0), agent(3, BJ)];
    let o = run(&customer(Some(1), Some(SH), Some("北京")), &agents);
    assert_eq!(assigned(&o), Some(1));
    assert_eq!(o.decision.reason(), &DecisionReason::Dedicated);
    assert_eq!(o.decision.explain_zh(), "专属客服");
    assert_eq!(o.decision.explain_en(), "dedicated agent");
    assert_eq!(o.rebind, None);
}

#[test]
fn same_group_when_the_dedicated_agent_is_unavailable() {
    let cases = [
        (
            with_status(agent(1, SH), AgentStatus::Break),
            NotAvailable::OnBreak,
            "同组：专属客服休息中",
            "same group: dedicated agent on break",
        ),
        (
            with_status(agent(1, SH), AgentStatus::Busy),
            NotAvailable::Busy,
            "同组：专属客服忙碌中",
            "same group: dedicated agent busy",
        ),
        (
            with_status(agent(1, SH), AgentStatus::Offline),
            NotAvailable::Offline,
            "同组：专属客服离线",
            "same group: dedicated agent offline",
        ),
        (
            AgentSnapshot {
                shift: Shift::Off,
                ..agent(1, SH)
            },
            NotAvailable::OffShift,
            "同组：专属客服不在班",
            "same group: dedicated agent off shift",
        ),
        (
            with_load(agent(1, SH), 5),
            NotAvailable::AtCapacity,
            "同组：专属客服已满负荷",
            "same group: dedicated agent at capacity",
        ),
    ];
    for (dedicated, why, zh, en) in cases {
        let agents = [dedicated, agent(2, SH), agent(3, BJ)];
        let o = run(&customer(Some(1), Some(SH), None), &agents);
        assert_eq!(assigned(&o), Some(2), "{why:?}");
        let reason = DecisionReason::SameGroup {
            group: groups().label(SH),
            dedicated: why,
        };
        assert_eq!(o.decision.reason(), &reason);
        assert_eq!(
            (
                o.decision.explain_zh().as_str(),
                o.decision.explain_en().as_str()
            ),
            (zh, en)
        );
        assert_eq!(o.rebind, None, "the binding stays: {why:?}");
    }
}

#[test]
fn without_a_crm_group_the_dedicated_agents_group_is_the_scope() {
    let agents = [
        with_status(agent(1, BJ), AgentStatus::Busy),
        agent(2, SH),
        agent(3, BJ),
    ];
    let o = run(&customer(Some(1), None, Some("上海")), &agents);
    assert_eq!(assigned(&o), Some(3));
    assert!(matches!(
        o.decision,
        Decision::Assign {
            group: Some(BJ),
            ..
        }
    ));
}

#[test]
fn within_a_group_least_load_wins() {
    let agents = [
        with_load(
            AgentSnapshot {
                last_assigned_at: Some(t0()),
                ..agent(1, SH)
            },
            2,
        ),
        with_load(
            AgentSnapshot {
                last_assigned_at: Some(t0() + Duration::hours(1)),
                ..agent(2, SH)
            },
            1,
        ),
        with_load(agent(3, SH), 3),
    ];
    assert_eq!(
        assigned(&run(&customer(None, Some(SH), None), &agents)),
        Some(2)
    );
}

#[test]
fn equal_load_goes_to_the_longest_waiting_then_at_random() {
    let at = |id, minutes| AgentSnapshot {
        last_assigned_at: Some(t0() + Duration::minutes(minutes)),
        ..agent(id, SH)
    };
    let c = customer(None, Some(SH), None);
    assert_eq!(assigned(&run(&c, &[at(1, 5), at(2, 1), at(3, 9)])), Some(2));
    assert_eq!(
        assigned(&run(&c, &[at(1, 5), agent(2, SH)])),
        Some(2),
        "never assigned waits longest"
    );

    let tied = [at(1, 5), at(2, 5), at(3, 5), with_load(at(4, 0), 1)];
    let mut chosen = std::collections::BTreeSet::new();
    for tie in 0..64 {
        let first = assigned(&run_with(&c, &tied, Scope::Customer, None, tie));
        let again = assigned(&run_with(&c, &tied, Scope::Customer, None, tie));
        assert_eq!(first, again, "deterministic for one random value");
        chosen.extend(first);
    }
    assert_eq!(chosen.into_iter().collect::<Vec<_>>(), [1, 2, 3]);

    let reversed: Vec<_> = tied.iter().rev().cloned().collect();
    for tie in 0..16 {
        assert_eq!(
            assigned(&run_with(&c, &tied, Scope::Customer, None, tie)),
            assigned(&run_with(&c, &reversed, Scope::Customer, None, tie)),
            "independent of the snapshot's order"
        );
    }
}

#[test]
fn capacity_is_never_exceeded() {
    let agents = [
        with_load(agent(1, SH), 5),
        AgentSnapshot {
            capacity: 0,
            ..agent(2, SH)
        },
    ];
    let o = run(&customer(None, Some(SH), None), &agents);
    assert_eq!(
        o.decision,
        Decision::Queue {
            group: Some(SH),
            reason: DecisionReason::CustomerGroup {
                group: groups().label(SH)
            }
        }
    );
    assert_eq!(
        o.decision.explain_zh(),
        "排队（所属组 上海组）：暂无空闲客服"
    );
    assert_eq!(
        o.decision.explain_en(),
        "queued (customer's group 上海): no agent free"
    );
}

#[test]
fn busy_and_break_queue_offline_and_off_shift_mean_nobody_on_duty() {
    let c = customer(None, Some(SH), None);
    for status in [AgentStatus::Busy, AgentStatus::Break] {
        let o = run(&c, &[with_status(agent(1, SH), status), agent(2, BJ)]);
        assert!(
            matches!(
                o.decision,
                Decision::Queue {
                    group: Some(SH),
                    ..
                }
            ),
            "{status:?}"
        );
    }
    let off_shift = AgentSnapshot {
        shift: Shift::Off,
        ..agent(3, SH)
    };
    let departed = AgentSnapshot {
        employment: Employment::Departed,
        ..agent(4, SH)
    };
    let o = run(
        &c,
        &[
            with_status(agent(1, SH), AgentStatus::Offline),
            off_shift,
            departed,
            agent(2, BJ),
        ],
    );
    assert!(
        matches!(
            o.decision,
            Decision::NobodyOnDuty {
                group: Some(SH),
                agent: None,
                ..
            }
        ),
        "no overflow to another group: {o:?}"
    );
    assert_eq!(
        o.decision.explain_en(),
        "nobody on duty (customer's group 上海): leave-a-message ticket"
    );
    assert_eq!(
        o.decision.explain_zh(),
        "无人值班（所属组 上海组）：留言工单"
    );
}

#[test]
fn nobody_on_duty_leaves_the_ticket_to_the_dedicated_agent() {
    let agents = [
        AgentSnapshot {
            shift: Shift::Off,
            ..agent(1, SH)
        },
        with_status(agent(2, SH), AgentStatus::Offline),
    ];
    let o = run(&customer(Some(1), Some(SH), None), &agents);
    assert!(
        matches!(
            o.decision,
            Decision::NobodyOnDuty {
                group: Some(SH),
                agent: Some(AgentId(1)),
                ..
            }
        ),
        "{o:?}"
    );
}

#[test]
fn a_departed_dedicated_agent_is_replaced_by_the_least_bound_in_the_group() {
    let departed = AgentSnapshot {
        employment: Employment::Departed,
        bound_customers: 0,
        ..agent(1, SH)
    };
    let agents = [
        departed,
        AgentSnapshot {
            bound_customers: 9,
            ..agent(2, SH)
        },
        AgentSnapshot {
            bound_customers: 3,
            load: 4,
            ..agent(3, SH)
        },
        AgentSnapshot {
            bound_customers: 0,
            ..agent(4, BJ)
        },
    ];
    let o = run(&customer(Some(1), Some(SH), None), &agents);
    assert_eq!(
        o.rebind,
        Some(Rebind {
            from: AgentId(1),
            to: AgentId(3),
            group: Some(SH)
        })
    );
    assert_eq!(
        assigned(&o),
        Some(3),
        "the new dedicated agent when available, despite load"
    );
    assert_eq!(o.decision.explain_zh(), "新专属客服（专属客服已离职）");
    assert_eq!(
        o.decision.explain_en(),
        "new dedicated agent (dedicated agent has left)"
    );

    // The least bound is on break: rebound all the same, served by another.
    let agents = [
        agents[0].clone(),
        agents[1].clone(),
        with_status(agents[2].clone(), AgentStatus::Break),
    ];
    let o = run(&customer(Some(1), Some(SH), None), &agents);
    assert_eq!(o.rebind.map(|r| r.to), Some(AgentId(3)));
    assert_eq!(assigned(&o), Some(2));
    assert_eq!(
        o.decision.explain_en(),
        "same group: dedicated agent has left"
    );
}

#[test]
fn an_unknown_or_moved_dedicated_agent_is_rebound_too() {
    let agents = [
        agent(2, SH),
        AgentSnapshot {
            bound_customers: 1,
            ..agent(3, SH)
        },
        agent(5, BJ),
    ];
    let o = run(&customer(Some(99), Some(SH), None), &agents);
    assert_eq!(
        o.rebind,
        Some(Rebind {
            from: AgentId(99),
            to: AgentId(2),
            group: Some(SH)
        })
    );

    let o = run(&customer(Some(5), Some(SH), None), &agents);
    assert_eq!(
        o.rebind,
        Some(Rebind {
            from: AgentId(5),
            to: AgentId(2),
            group: Some(SH)
        })
    );
    assert_eq!(
        o.decision.reason(),
        &DecisionReason::NewDedicated {
            previous: NotAvailable::MovedGroup
        }
    );
}

#[test]
fn without_any_group_a_departed_binding_moves_to_the_serving_agent() {
    let agents = [
        AgentSnapshot {
            employment: Employment::Departed,
            groups: vec![],
            ..agent(1, SH)
        },
        agent(2, BJ),
    ];
    let o = run(&customer(Some(1), None, None), &agents);
    assert_eq!(assigned(&o), Some(2));
    assert_eq!(
        o.rebind,
        Some(Rebind {
            from: AgentId(1),
            to: AgentId(2),
            group: None
        })
    );
}

#[test]
fn first_contact_by_region() {
    let agents = [
        with_load(agent(1, SH), 1),
        agent(2, BJ),
        with_load(agent(3, SH), 0),
    ];
    let o = run(&customer(None, None, Some("上海")), &agents);
    assert_eq!(assigned(&o), Some(3));
    assert_eq!(o.decision.explain_zh(), "地区 上海 → 上海组");
    assert_eq!(o.decision.explain_en(), "region 上海 → group 上海");

    let o = run(&customer(None, None, Some(" 北京市 ")), &agents);
    assert_eq!(assigned(&o), Some(2), "regions are normalised");
}

#[test]
fn a_crm_group_wins_over_the_region() {
    let o = run(
        &customer(None, Some(BJ), Some("上海")),
        &[agent(1, SH), agent(2, BJ)],
    );
    assert_eq!(assigned(&o), Some(2));
    assert_eq!(o.decision.explain_en(), "customer's group 北京");
}

#[test]
fn no_region_or_no_group_takes_the_least_loaded_anywhere() {
    let agents = [
        with_load(agent(1, SH), 2),
        with_load(agent(2, BJ), 1),
        with_status(agent(3, SH), AgentStatus::Busy),
    ];
    let o = run(&customer(None, None, None), &agents);
    assert_eq!(assigned(&o), Some(2));
    assert_eq!(o.decision.explain_zh(), "无地区：负载最低");
    assert_eq!(o.decision.explain_en(), "no region: least loaded");

    let o = run(&customer(None, None, Some("拉萨")), &agents);
    assert_eq!(assigned(&o), Some(2));
    assert_eq!(o.decision.explain_zh(), "地区 拉萨 无对应组：负载最低");
    assert_eq!(
        o.decision.explain_en(),
        "region 拉萨 has no group: least loaded"
    );
    assert!(matches!(o.decision, Decision::Assign { group: None, .. }));

    // Ties are random, not by last assignment.
    let recent = AgentSnapshot {
        last_assigned_at: Some(t0()),
        ..agent(1, SH)
    };
    let chosen: std::collections::BTreeSet<_> = (0..64)
        .filter_map(|tie| {
            assigned(&run_with(
                &customer(None, None, None),
                &[recent.clone(), agent(2, BJ)],
                Scope::Customer,
                None,
                tie,
            ))
        })
        .collect();
    assert_eq!(chosen.len(), 2);
}

#[test]
fn nobody_free_anywhere_queues_globally_or_opens_a_ticket() {
    let o = run(
        &customer(None, None, None),
        &[with_status(agent(1, SH), AgentStatus::Busy)],
    );
    assert!(matches!(o.decision, Decision::Queue { group: None, .. }));
    let o = run(
        &customer(None, None, None),
        &[with_status(agent(1, SH), AgentStatus::Offline)],
    );
    assert!(matches!(
        o.decision,
        Decision::NobodyOnDuty {
            group: None,
            agent: None,
            ..
        }
    ));
    let o = run(&customer(None, None, None), &[]);
    assert!(matches!(
        o.decision,
        Decision::NobodyOnDuty { group: None, .. }
    ));
}

#[test]
fn a_transfer_to_a_group_stays_in_it() {
    let agents = [
        agent(1, SH),
        with_load(agent(2, BJ), 1),
        agent(3, BJ),
        agent(4, BJ),
    ];
    let c = customer(Some(1), Some(SH), None);
    let o = run_with(&c, &agents, Scope::Group(BJ), Some(3), 0);
    assert_eq!(assigned(&o), Some(4));
    assert_eq!(o.decision.explain_zh(), "转接 → 北京组");
    assert_eq!(o.decision.explain_en(), "transfer → group 北京");

    let c = customer(Some(2), Some(BJ), None);
    let o = run_with(
        &c,
        &[with_load(agent(2, BJ), 1), agent(3, BJ)],
        Scope::Group(BJ),
        None,
        0,
    );
    assert_eq!(
        assigned(&o),
        Some(2),
        "the dedicated agent when in the target group"
    );
}

#[test]
fn rerouting_never_returns_to_the_excluded_agent() {
    let agents = [agent(1, SH), with_load(agent(2, SH), 3)];
    let o = run_with(
        &customer(Some(1), Some(SH), None),
        &agents,
        Scope::Customer,
        Some(1),
        0,
    );
    assert_eq!(assigned(&o), Some(2));
    assert_eq!(
        o.decision.explain_en(),
        "same group: re-routed away from dedicated agent"
    );
    let o = run_with(
        &customer(Some(1), Some(SH), None),
        &agents[..1],
        Scope::Customer,
        Some(1),
        0,
    );
    assert!(
        matches!(o.decision, Decision::Queue { .. }),
        "the excluded agent is on duty"
    );
}

#[test]
fn groups_are_labelled_and_decisions_serialise() {
    let g = groups();
    assert_eq!(g.label(GroupId(7)).name, "#7");
    assert_eq!(
        GroupLabel {
            id: SH,
            name: "华东组".into()
        }
        .zh(),
        "华东组"
    );
    assert_eq!(g.group_for_region("上海"), Some(SH));
    let o = run(&customer(None, None, Some("上海")), &[agent(1, SH)]);
    let json = serde_json::to_value(&o.decision).unwrap_or_default();
    assert_eq!(json["decision"], "assign");
    assert_eq!(json["reason"]["rule"], "region");
    assert_eq!(
        serde_json::from_value::<Decision>(json).ok(),
        Some(o.decision)
    );
}
