//! The state machine's table: every (state, trigger) pair of the samples has
//! exactly one row. A new variant of any input enum breaks `witness` (no
//! wildcard arms), its sample must then be added, and the coverage check
//! fails until its rows are written.

use super::*;
use ConversationState::{Assigned, Bot, Closed, Queued};
use Effect as E;

const A: AgentId = AgentId(1);
const B: AgentId = AgentId(2);
const G: GroupId = GroupId(10);

/// Fails to compile when a variant is added to an input type.
#[allow(dead_code)]
fn witness(s: ConversationState, t: Trigger) {
    match s {
        Bot | Queued | Assigned(_) | Closed => {}
    }
    match t {
        Trigger::CustomerMessage | Trigger::NoAgentAvailable | Trigger::NobodyOnDuty => {}
        Trigger::HumanRequested { via } => match via {
            HandoffVia::Keyword
            | HandoffVia::MenuClick
            | HandoffVia::WidgetButton
            | HandoffVia::RobotGaveUp => {}
        },
        Trigger::Assigned { .. } | Trigger::AgentReplyTimeout { .. } => {}
        Trigger::AgentReleased { why, .. } => match why {
            ReleaseReason::Offline | ReleaseReason::Departed => {}
        },
        Trigger::Transferred { to } => match to {
            TransferTarget::Agent(_) | TransferTarget::Group(_) => {}
        },
        Trigger::Closed { by } => match by {
            CloseReason::Agent(_)
            | CloseReason::Timeout
            | CloseReason::Customer
            | CloseReason::System => {}
        },
    }
}

fn states() -> Vec<ConversationState> {
    vec![Bot, Queued, Assigned(A), Closed]
}

const MSG: Trigger = Trigger::CustomerMessage;
const KEYWORD: Trigger = Trigger::HumanRequested {
    via: HandoffVia::Keyword,
};
const MENU: Trigger = Trigger::HumanRequested {
    via: HandoffVia::MenuClick,
};
const WIDGET: Trigger = Trigger::HumanRequested {
    via: HandoffVia::WidgetButton,
};
const GAVE_UP: Trigger = Trigger::HumanRequested {
    via: HandoffVia::RobotGaveUp,
};
const ASSIGN_A: Trigger = Trigger::Assigned { agent: A };
const ASSIGN_B: Trigger = Trigger::Assigned { agent: B };
const NO_AGENT: Trigger = Trigger::NoAgentAvailable;
const NOBODY: Trigger = Trigger::NobodyOnDuty;
const A_OFFLINE: Trigger = Trigger::AgentReleased {
    agent: A,
    why: ReleaseReason::Offline,
};
const A_DEPARTED: Trigger = Trigger::AgentReleased {
    agent: A,
    why: ReleaseReason::Departed,
};
const B_OFFLINE: Trigger = Trigger::AgentReleased {
    agent: B,
    why: ReleaseReason::Offline,
};
const A_SLOW: Trigger = Trigger::AgentReplyTimeout { agent: A };
const B_SLOW: Trigger = Trigger::AgentReplyTimeout { agent: B };
const TO_A: Trigger = Trigger::Transferred {
    to: TransferTarget::Agent(A),
};
const TO_B: Trigger = Trigger::Transferred {
    to: TransferTarget::Agent(B),
};
const TO_G: Trigger = Trigger::Transferred {
    to: TransferTarget::Group(G),
};
const CLOSE_A: Trigger = Trigger::Closed {
    by: CloseReason::Agent(A),
};
const CLOSE_B: Trigger = Trigger::Closed {
    by: CloseReason::Agent(B),
};
const CLOSE_TIMEOUT: Trigger = Trigger::Closed {
    by: CloseReason::Timeout,
};
const CLOSE_CUSTOMER: Trigger = Trigger::Closed {
    by: CloseReason::Customer,
};
const CLOSE_SYSTEM: Trigger = Trigger::Closed {
    by: CloseReason::System,
};

fn triggers() -> Vec<Trigger> {
    vec![
        MSG,
        KEYWORD,
        MENU,
        WIDGET,
        GAVE_UP,
        ASSIGN_A,
        ASSIGN_B,
        NO_AGENT,
        NOBODY,
        A_OFFLINE,
        A_DEPARTED,
        B_OFFLINE,
        A_SLOW,
        B_SLOW,
        TO_A,
        TO_B,
        TO_G,
        CLOSE_A,
        CLOSE_B,
        CLOSE_TIMEOUT,
        CLOSE_CUSTOMER,
        CLOSE_SYSTEM,
    ]
}

type Expected = Result<(ConversationState, Vec<Effect>), Invalid>;

fn go(next: ConversationState, effects: &[Effect]) -> Expected {
    Ok((next, effects.to_vec()))
}

const ROUTE: Effect = E::Route {
    scope: Scope::Customer,
    exclude: None,
};
const REROUTE_A: Effect = E::Route {
    scope: Scope::Customer,
    exclude: Some(A),
};
const JOINED_B: Effect = E::TellCustomer(Notice::AgentJoined(B));

#[rustfmt::skip]
fn table() -> Vec<(ConversationState, Trigger, Expected)> {
    use Invalid::{NotAssigned, NotWaiting, OtherAgent, RobotNotInCharge, SameAgent};
    let assign = |x| [E::Dequeue, E::NotifyAgent(x), E::BindIfUnbound(x), E::TellCustomer(Notice::AgentJoined(x))];
    vec![
        (Bot, MSG, go(Bot, &[E::RobotAnswer])),
        (Bot, KEYWORD, go(Queued, &[ROUTE])),
        (Bot, MENU, go(Queued, &[ROUTE])),
        (Bot, WIDGET, go(Queued, &[ROUTE])),
        (Bot, GAVE_UP, go(Queued, &[ROUTE])),
        (Bot, ASSIGN_A, Err(NotWaiting)),
        (Bot, ASSIGN_B, Err(NotWaiting)),
        (Bot, NO_AGENT, Err(NotWaiting)),
        (Bot, NOBODY, Err(NotWaiting)),
        (Bot, A_OFFLINE, Err(NotAssigned)),
        (Bot, A_DEPARTED, Err(NotAssigned)),
        (Bot, B_OFFLINE, Err(NotAssigned)),
        (Bot, A_SLOW, Err(NotAssigned)),
        (Bot, B_SLOW, Err(NotAssigned)),
        (Bot, TO_A, Err(NotAssigned)),
        (Bot, TO_B, Err(NotAssigned)),
        (Bot, TO_G, Err(NotAssigned)),
        (Bot, CLOSE_A, go(Closed, &[])),
        (Bot, CLOSE_B, go(Closed, &[])),
        (Bot, CLOSE_TIMEOUT, go(Closed, &[])),
        (Bot, CLOSE_CUSTOMER, go(Closed, &[])),
        (Bot, CLOSE_SYSTEM, go(Closed, &[])),

        (Queued, MSG, go(Queued, &[])),
        (Queued, KEYWORD, go(Queued, &[E::NotifyQueuePosition])),
        (Queued, MENU, go(Queued, &[E::NotifyQueuePosition])),
        (Queued, WIDGET, go(Queued, &[E::NotifyQueuePosition])),
        (Queued, GAVE_UP, Err(RobotNotInCharge)),
        (Queued, ASSIGN_A, go(Assigned(A), &assign(A))),
        (Queued, ASSIGN_B, go(Assigned(B), &assign(B))),
        (Queued, NO_AGENT, go(Queued, &[E::Enqueue, E::NotifyQueuePosition])),
        (Queued, NOBODY, go(Bot, &[E::Dequeue, E::OpenTicket, E::TellCustomer(Notice::NobodyOnDuty)])),
        (Queued, A_OFFLINE, Err(NotAssigned)),
        (Queued, A_DEPARTED, Err(NotAssigned)),
        (Queued, B_OFFLINE, Err(NotAssigned)),
        (Queued, A_SLOW, Err(NotAssigned)),
        (Queued, B_SLOW, Err(NotAssigned)),
        (Queued, TO_A, go(Assigned(A), &assign(A))),
        (Queued, TO_B, go(Assigned(B), &assign(B))),
        (Queued, TO_G, go(Queued, &[E::Dequeue, E::Route { scope: Scope::Group(G), exclude: None }])),
        (Queued, CLOSE_A, go(Closed, &[E::Dequeue])),
        (Queued, CLOSE_B, go(Closed, &[E::Dequeue])),
        (Queued, CLOSE_TIMEOUT, go(Closed, &[E::Dequeue])),
        (Queued, CLOSE_CUSTOMER, go(Closed, &[E::Dequeue])),
        (Queued, CLOSE_SYSTEM, go(Closed, &[E::Dequeue])),

        (Assigned(A), MSG, go(Assigned(A), &[E::NotifyAgent(A)])),
        (Assigned(A), KEYWORD, go(Assigned(A), &[E::NotifyAgent(A)])),
        (Assigned(A), MENU, go(Assigned(A), &[E::NotifyAgent(A)])),
        (Assigned(A), WIDGET, go(Assigned(A), &[E::NotifyAgent(A)])),
        (Assigned(A), GAVE_UP, Err(RobotNotInCharge)),
        (Assigned(A), ASSIGN_A, Err(SameAgent)),
        (Assigned(A), ASSIGN_B, go(Assigned(B), &[E::ReleaseAgent(A), E::NotifyAgent(B), JOINED_B])),
        (Assigned(A), NO_AGENT, go(Assigned(A), &[])),
        (Assigned(A), NOBODY, go(Assigned(A), &[])),
        (Assigned(A), A_OFFLINE, go(Queued, &[E::ReleaseAgent(A), REROUTE_A])),
        (Assigned(A), A_DEPARTED, go(Queued, &[E::ReleaseAgent(A), REROUTE_A])),
        (Assigned(A), B_OFFLINE, Err(OtherAgent)),
        (Assigned(A), A_SLOW, go(Assigned(A), &[E::AlertSupervisor(A), REROUTE_A])),
        (Assigned(A), B_SLOW, Err(OtherAgent)),
        (Assigned(A), TO_A, Err(SameAgent)),
        (Assigned(A), TO_B, go(Assigned(B), &[E::ReleaseAgent(A), E::NotifyAgent(B), JOINED_B])),
        (Assigned(A), TO_G, go(Queued, &[E::ReleaseAgent(A), E::Route { scope: Scope::Group(G), exclude: Some(A) }])),
        (Assigned(A), CLOSE_A, go(Closed, &[E::ReleaseAgent(A), E::SendSurvey])),
        (Assigned(A), CLOSE_B, go(Closed, &[E::ReleaseAgent(A), E::SendSurvey])),
        (Assigned(A), CLOSE_TIMEOUT, go(Closed, &[E::ReleaseAgent(A), E::SendSurvey])),
        (Assigned(A), CLOSE_CUSTOMER, go(Closed, &[E::ReleaseAgent(A)])),
        (Assigned(A), CLOSE_SYSTEM, go(Closed, &[E::ReleaseAgent(A)])),

        (Closed, MSG, go(Bot, &[E::RobotAnswer])),
        (Closed, KEYWORD, go(Queued, &[ROUTE])),
        (Closed, MENU, go(Queued, &[ROUTE])),
        (Closed, WIDGET, go(Queued, &[ROUTE])),
        (Closed, GAVE_UP, Err(RobotNotInCharge)),
        (Closed, ASSIGN_A, Err(Invalid::Closed)),
        (Closed, ASSIGN_B, Err(Invalid::Closed)),
        (Closed, NO_AGENT, Err(Invalid::Closed)),
        (Closed, NOBODY, Err(Invalid::Closed)),
        (Closed, A_OFFLINE, Err(Invalid::Closed)),
        (Closed, A_DEPARTED, Err(Invalid::Closed)),
        (Closed, B_OFFLINE, Err(Invalid::Closed)),
        (Closed, A_SLOW, Err(Invalid::Closed)),
        (Closed, B_SLOW, Err(Invalid::Closed)),
        (Closed, TO_A, Err(Invalid::Closed)),
        (Closed, TO_B, Err(Invalid::Closed)),
        (Closed, TO_G, Err(Invalid::Closed)),
        (Closed, CLOSE_A, Err(Invalid::Closed)),
        (Closed, CLOSE_B, Err(Invalid::Closed)),
        (Closed, CLOSE_TIMEOUT, Err(Invalid::Closed)),
        (Closed, CLOSE_CUSTOMER, Err(Invalid::Closed)),
        (Closed, CLOSE_SYSTEM, Err(Invalid::Closed)),
    ]
}

/// Every sample pair, with its outcome.
fn all() -> Vec<(
    ConversationState,
    Trigger,
    Result<Transition, InvalidTransition>,
)> {
    let mut out = Vec::new();
    for s in states() {
        for t in triggers() {
            out.push((s, t, transition(&s, &t)));
        }
    }
    out
}

#[test]
fn every_pair_has_exactly_one_row_and_matches_it() {
    let table = table();
    for s in states() {
        for t in triggers() {
            let rows: Vec<_> = table
                .iter()
                .filter(|(rs, rt, _)| *rs == s && *rt == t)
                .collect();
            assert_eq!(rows.len(), 1, "rows for {s:?} + {t:?}");
            let got = transition(&s, &t)
                .map(|tr| (tr.next, tr.effects))
                .map_err(|e| {
                    assert_eq!((e.from, e.trigger), (s, t), "error names its input");
                    e.why
                });
            assert_eq!(got, rows[0].2, "{s:?} + {t:?}");
        }
    }
    assert_eq!(table.len(), states().len() * triggers().len());
}

#[test]
fn reasons_name_what_happened() {
    let reason = |s: ConversationState, t: Trigger| transition(&s, &t).map(|tr| tr.reason);
    assert_eq!(reason(Closed, MSG), Ok(Reason::Reopened));
    assert_eq!(
        reason(Bot, MENU),
        Ok(Reason::HumanRequested(HandoffVia::MenuClick))
    );
    assert_eq!(
        reason(Closed, WIDGET),
        Ok(Reason::ReopenedForHuman(HandoffVia::WidgetButton))
    );
    assert_eq!(reason(Queued, ASSIGN_A), Ok(Reason::Assigned));
    assert_eq!(reason(Assigned(A), ASSIGN_B), Ok(Reason::Reassigned));
    assert_eq!(reason(Assigned(A), NO_AGENT), Ok(Reason::KeptByAgent));
    assert_eq!(reason(Queued, NOBODY), Ok(Reason::NobodyOnDuty));
    assert_eq!(
        reason(Assigned(A), A_DEPARTED),
        Ok(Reason::AgentReleased(ReleaseReason::Departed))
    );
    assert_eq!(
        reason(Assigned(A), TO_G),
        Ok(Reason::Transferred(TransferTarget::Group(G)))
    );
    assert_eq!(
        reason(Bot, CLOSE_TIMEOUT),
        Ok(Reason::Closed(CloseReason::Timeout))
    );
    for (_, t, r) in all() {
        if let (Trigger::Closed { by }, Ok(tr)) = (t, r) {
            assert_eq!(tr.reason, Reason::Closed(by));
        }
    }
}

#[test]
fn reasons_render_in_both_languages() {
    let r = Reason::HumanRequested(HandoffVia::Keyword);
    assert_eq!(r.zh(), "转人工（关键词）");
    assert_eq!(r.to_string(), "human requested (keyword)");
    assert_eq!(
        Reason::Closed(CloseReason::Agent(A)).to_string(),
        "closed by agent 1"
    );
    assert_eq!(
        Reason::Transferred(TransferTarget::Group(G)).zh(),
        "转接到组 10"
    );
    for (_, _, r) in all() {
        if let Ok(tr) = r {
            assert!(!tr.reason.zh().is_empty() && !tr.reason.to_string().is_empty());
        }
    }
}

#[test]
fn closed_plus_message_reopens_as_bot() {
    let tr = transition(&Closed, &MSG).unwrap();
    assert_eq!(tr.next, Bot);
    assert!(tr.worth_recording(&Closed));
}

#[test]
fn agent_changes_only_through_assignment_or_transfer() {
    for (s, t, r) in all() {
        let Ok(tr) = r else { continue };
        if let Assigned(b) = tr.next
            && s != Assigned(b)
        {
            assert!(
                t == Trigger::Assigned { agent: b }
                    || t == Trigger::Transferred {
                        to: TransferTarget::Agent(b)
                    },
                "{s:?} + {t:?} → {:?}",
                tr.next
            );
        }
    }
}

#[test]
fn an_agent_is_released_exactly_when_they_lose_the_conversation() {
    for (s, t, r) in all() {
        let Ok(tr) = r else { continue };
        let released: Vec<_> = tr
            .effects
            .iter()
            .filter_map(|e| match e {
                E::ReleaseAgent(x) => Some(*x),
                _ => None,
            })
            .collect();
        match s {
            Assigned(a) if tr.next != Assigned(a) => {
                assert_eq!(released, vec![a], "{s:?} + {t:?}")
            }
            _ => assert!(released.is_empty(), "{s:?} + {t:?}"),
        }
    }
}

#[test]
fn entering_the_wait_routes_and_leaving_the_queue_dequeues() {
    for (s, t, r) in all() {
        let Ok(tr) = r else { continue };
        let routes = tr
            .effects
            .iter()
            .filter(|e| matches!(e, E::Route { .. }))
            .count();
        if tr.next == Queued && s != Queued {
            assert_eq!(routes, 1, "{s:?} + {t:?}");
        }
        if s == Queued && tr.next != Queued {
            assert!(tr.effects.contains(&E::Dequeue), "{s:?} + {t:?}");
        }
        if tr.effects.contains(&E::Enqueue) {
            assert_eq!((s, t, tr.next), (Queued, NO_AGENT, Queued));
        }
        // Re-routing away from an agent never offers them the conversation.
        if let (Assigned(a), true) = (s, routes == 1) {
            assert!(
                tr.effects
                    .iter()
                    .any(|e| matches!(e, E::Route { exclude: Some(x), .. } if *x == a))
            );
        }
    }
}

#[test]
fn surveys_follow_human_service_closed_by_agent_or_timeout() {
    for (s, t, r) in all() {
        let Ok(tr) = r else { continue };
        let survey = tr.effects.contains(&E::SendSurvey);
        let expected = matches!(s, Assigned(_))
            && matches!(
                t,
                Trigger::Closed {
                    by: CloseReason::Agent(_) | CloseReason::Timeout
                }
            );
        assert_eq!(survey, expected, "{s:?} + {t:?}");
    }
}

#[test]
fn effects_name_only_agents_of_the_transition() {
    for (s, t, r) in all() {
        let Ok(tr) = r else { continue };
        for e in &tr.effects {
            if let E::NotifyAgent(x) | E::BindIfUnbound(x) | E::AlertSupervisor(x) = e {
                assert!(
                    tr.next == Assigned(*x) || s == Assigned(*x),
                    "{s:?} + {t:?}: {e:?}"
                );
            }
        }
    }
}

#[test]
fn a_closed_conversation_accepts_only_the_customer() {
    for t in triggers() {
        let accepted = transition(&Closed, &t).is_ok();
        assert_eq!(
            accepted,
            t == MSG
                || matches!(t, Trigger::HumanRequested { via } if via != HandoffVia::RobotGaveUp),
            "{t:?}"
        );
    }
}

#[test]
fn every_state_is_reachable_and_every_state_can_close() {
    let mut seen = vec![Bot];
    let mut i = 0;
    while i < seen.len() {
        for t in triggers() {
            if let Ok(tr) = transition(&seen[i], &t)
                && !seen.contains(&tr.next)
            {
                seen.push(tr.next);
            }
        }
        i += 1;
    }
    for s in states() {
        assert!(seen.contains(&s), "{s:?} unreachable");
        if s != Closed {
            assert_eq!(transition(&s, &CLOSE_SYSTEM).map(|t| t.next), Ok(Closed));
        }
    }
}

#[test]
fn routine_steps_are_not_recorded_but_changes_are() {
    for (s, t, r) in all() {
        let Ok(tr) = r else { continue };
        if tr.next != s {
            assert!(tr.worth_recording(&s), "{s:?} + {t:?}");
        }
    }
    let tr = transition(&Bot, &MSG).unwrap();
    assert!(!tr.worth_recording(&Bot));
    let tr = transition(&Assigned(A), &A_SLOW).unwrap();
    assert!(
        tr.worth_recording(&Assigned(A)),
        "a reply timeout is recorded"
    );
}

#[test]
fn invalid_transitions_explain_themselves() {
    let e = transition(&Closed, &ASSIGN_A).unwrap_err();
    assert_eq!(e.why, Invalid::Closed);
    assert!(e.to_string().contains("closed"), "{e}");
}

#[test]
fn states_serialise_for_storage() {
    let json = serde_json::to_string(&Assigned(A)).unwrap();
    assert_eq!(json, r#"{"assigned":1}"#);
    assert_eq!(
        serde_json::from_str::<ConversationState>(r#""queued""#).unwrap(),
        Queued
    );
}

// ---- Hand-off keywords ----

#[test]
fn keywords_match_exactly_after_normalisation() {
    let k = HandoffKeywords::default();
    for text in [
        "人工",
        " 转人工 ",
        "转人工！",
        "人工。",
        "客服?",
        "真人",
        "HUMAN",
        "Agent",
        "ＨＵＭＡＮ",
        "\u{3000}人工\u{3000}",
        "【人工】",
    ] {
        assert!(k.is_human_request(text), "{text:?}");
    }
}

#[test]
fn keywords_count_inside_short_messages() {
    let k = HandoffKeywords::default();
    for text in [
        "我要转人工",
        "请帮我转人工客服谢谢",
        "找客服",
        "I want a human",
        "talk to an agent please",
        "有真人吗",
    ] {
        assert!(k.is_human_request(text), "{text:?}");
    }
}

#[test]
fn long_messages_and_other_words_do_not_hand_off() {
    let k = HandoffKeywords::default();
    for text in [
        "",
        "   ",
        "你好",
        "我的车什么时候能卖出去，客服说下周",
        "agency",
        "agents",
        "humanity",
        "reagent",
        "人",
    ] {
        assert!(!k.is_human_request(text), "{text:?}");
    }
}

#[test]
fn keywords_are_configurable() {
    let k = HandoffKeywords::new(["找经理", " ＭＡＮＡＧＥＲ ", "", "找经理"], 4);
    assert_eq!(k.keywords(), ["找经理", "manager"]);
    assert!(k.is_human_request("找经理！"));
    assert!(k.is_human_request("我找经理"), "4 units");
    assert!(
        !k.is_human_request("请帮我找经理"),
        "6 units: too long for a contained keyword"
    );
    assert!(k.is_human_request("manager please"));
    assert!(!k.is_human_request("人工"), "the defaults are replaced");
}

#[test]
fn normalisation_and_units() {
    assert_eq!(
        normalise_text("  Ｈｅｌｌｏ，\u{3000}ＷＯＲＬＤ！ "),
        "hello, world"
    );
    assert_eq!(normalise_text("a \t\n b"), "a b");
    assert_eq!(normalise_text("……"), "");
    assert_eq!(message_units("i want a human"), 4);
    assert_eq!(message_units("我要转人工"), 5);
    assert_eq!(message_units("转 human!"), 2);
    assert_eq!(message_units(""), 0);
}
