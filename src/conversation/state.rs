//! The conversation state machine, as a pure function.
//!
//! ```text
//!            human requested                 Assigned{agent}
//!   ┌─────┐ ───────────────► ┌────────┐ ─────────────────► ┌──────────────┐
//!   │ Bot │                  │ Queued │                    │ Assigned(a)  │
//!   └─────┘ ◄─────────────── └────────┘ ◄───────────────── └──────────────┘
//!      ▲     nobody on duty      ▲       agent released,          │
//!      │     (ticket)            │       transfer to a group      │ closed
//!      │ next customer message   └─────── closed ──────┐          ▼
//!      └────────────────────────────────────────────── Closed ◄───┘
//! ```
//!
//! [`transition`] maps a state and a [`Trigger`] to the next state, the
//! [`Effect`]s the caller must carry out, and a [`Reason`] for the transition
//! record (the caller adds who and when). It reads nothing and writes
//! nothing.
//!
//! `Queued` means "waiting for a human": it starts when the customer asks for
//! one (the caller then runs routing and feeds its decision back as
//! [`Trigger::Assigned`], [`Trigger::NoAgentAvailable`] or
//! [`Trigger::NobodyOnDuty`]) and lasts while the conversation sits in a
//! queue. A request for a human in `Closed` reopens the conversation straight
//! into `Queued`; the customer's dedicated agent lives on the customer, so a
//! reopened conversation is routed to them again. A trigger that makes no sense in a state (a routing result for a
//! closed conversation, a release by an agent who does not hold it) is an
//! [`InvalidTransition`]: a stale event the caller logs and drops.
//!
//! [`HandoffKeywords`] decides whether a customer's text asks for a person.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, GroupId};
use crate::routing::Scope;

mod handoff;

pub use handoff::{
    DEFAULT_HANDOFF_KEYWORDS, DEFAULT_MAX_UNITS, HandoffKeywords, message_units, normalise_text,
};

/// Where a conversation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationState {
    /// The robot answers (a new conversation's state).
    Bot,
    /// Waiting for a human: being routed, or in a queue.
    Queued,
    /// A human agent serves the customer.
    Assigned(AgentId),
    /// Over; the next customer message reopens it as `Bot`.
    Closed,
}

/// How the customer asked for a human.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandoffVia {
    /// A text matched by [`HandoffKeywords`].
    Keyword,
    /// A click on the Official Account menu's "人工客服" item.
    MenuClick,
    /// The web widget's "talk to a person" button.
    WidgetButton,
    /// The robot could not answer and handed over. Valid only while the robot
    /// is in charge (`Bot`).
    RobotGaveUp,
}

/// The destination of a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferTarget {
    /// A named agent: assigned directly (the sender chose them).
    Agent(AgentId),
    /// A group: routed within it.
    Group(GroupId),
}

/// Who or what closed the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// An agent or supervisor (permissions are the caller's concern).
    Agent(AgentId),
    /// No customer message for the configured time.
    Timeout,
    /// The customer ended it (the widget's close button).
    Customer,
    /// Kefu itself (maintenance, a customer deleted by the CRM…).
    System,
}

impl CloseReason {
    /// The satisfaction survey follows a close by an agent or a timeout (the
    /// issue's rule), and only when a human served the customer.
    fn sends_survey(self) -> bool {
        matches!(self, CloseReason::Agent(_) | CloseReason::Timeout)
    }
}

/// Why an agent let go of a conversation without closing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseReason {
    /// Their presence expired (console gone past the grace period) or they
    /// went offline.
    Offline,
    /// They left the company or their group.
    Departed,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The customer wrote something that is not a request for a human.
    CustomerMessage,
    /// The customer asked for a human (or the robot gave up).
    HumanRequested { via: HandoffVia },
    /// Routing chose this agent (or a queue drain gave it to them).
    Assigned { agent: AgentId },
    /// Routing found nobody free in scope: wait in the queue.
    NoAgentAvailable,
    /// Routing found nobody on duty at all: leave-a-message ticket.
    NobodyOnDuty,
    /// The assigned agent let go (offline, departed): route again.
    AgentReleased { agent: AgentId, why: ReleaseReason },
    /// The assigned agent did not reply in time: offer the conversation to
    /// another agent; it stays with them until someone takes it.
    AgentReplyTimeout { agent: AgentId },
    /// An agent (or supervisor) transferred the conversation.
    Transferred { to: TransferTarget },
    /// The conversation was closed.
    Closed { by: CloseReason },
}

/// What the customer is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Notice {
    /// A human agent is now serving them.
    AgentJoined(AgentId),
    /// Nobody is on duty; their message was taken as a ticket.
    NobodyOnDuty,
}

/// What the caller must do after a transition, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Let the robot answer the customer's message.
    RobotAnswer,
    /// Run `routing::assign` with this scope and excluded agent, and feed the
    /// decision back as `Assigned`, `NoAgentAvailable` or `NobodyOnDuty`.
    Route {
        scope: Scope,
        exclude: Option<AgentId>,
    },
    /// Put the conversation in its group's queue (keeping its place if it is
    /// already there).
    Enqueue,
    /// Tell the customer their place in the queue ("您前面还有 3 位").
    NotifyQueuePosition,
    /// Take the conversation out of the queue if it is there; those behind
    /// it move up and are told.
    Dequeue,
    /// Show the conversation (a new assignment or new activity) on this
    /// agent's console.
    NotifyAgent(AgentId),
    /// Take the conversation off this agent: one less in their load, so the
    /// queue may drain towards them.
    ReleaseAgent(AgentId),
    /// Make this agent the customer's dedicated agent if they have none
    /// (the first assignment binds).
    BindIfUnbound(AgentId),
    /// Tell the customer something.
    TellCustomer(Notice),
    /// Open a leave-a-message ticket (or add to the customer's open one),
    /// assigned as routing's `NobodyOnDuty` decision says.
    OpenTicket,
    /// Alert the supervisors of this agent's groups (reply timeout).
    AlertSupervisor(AgentId),
    /// Send the satisfaction survey, channel-appropriate.
    SendSurvey,
}

/// Why the conversation moved: the "why" of the transition record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Bot stays Bot: the robot answers.
    RobotAnswers,
    /// A message while waiting for a human.
    WaitingForHuman,
    /// A message to the assigned agent.
    ForwardedToAgent,
    /// Asked for a human again while waiting.
    AskedAgainWhileWaiting,
    /// Asked for a human while already served by one.
    AlreadyWithAgent,
    /// A closed conversation reopened with the robot.
    Reopened,
    HumanRequested(HandoffVia),
    /// A closed conversation reopened straight to routing.
    ReopenedForHuman(HandoffVia),
    /// Routing (or a queue drain) gave it to an agent.
    Assigned,
    /// After a reply timeout, another agent took it.
    Reassigned,
    /// Nobody free: queued.
    Queued,
    /// After a reply timeout, nobody else was free: it stays.
    KeptByAgent,
    /// Nobody on duty: a ticket, and the robot again.
    NobodyOnDuty,
    AgentReleased(ReleaseReason),
    AgentReplyTimeout,
    Transferred(TransferTarget),
    Closed(CloseReason),
}

impl Reason {
    /// Routine steps (a message within the same state) need no transition
    /// record; everything else is recorded and published.
    pub fn is_routine(self) -> bool {
        matches!(
            self,
            Reason::RobotAnswers
                | Reason::WaitingForHuman
                | Reason::ForwardedToAgent
                | Reason::AskedAgainWhileWaiting
                | Reason::AlreadyWithAgent
        )
    }

    pub fn zh(self) -> String {
        let via = |v: HandoffVia| match v {
            HandoffVia::Keyword => "关键词",
            HandoffVia::MenuClick => "菜单",
            HandoffVia::WidgetButton => "网页按钮",
            HandoffVia::RobotGaveUp => "机器人无法回答",
        };
        match self {
            Reason::RobotAnswers => "机器人回答".to_owned(),
            Reason::WaitingForHuman => "排队中留言".to_owned(),
            Reason::ForwardedToAgent => "转给客服".to_owned(),
            Reason::AskedAgainWhileWaiting => "排队中再次要求人工".to_owned(),
            Reason::AlreadyWithAgent => "已在人工服务中".to_owned(),
            Reason::Reopened => "会话重新打开".to_owned(),
            Reason::HumanRequested(v) => format!("转人工（{}）", via(v)),
            Reason::ReopenedForHuman(v) => format!("会话重新打开并转人工（{}）", via(v)),
            Reason::Assigned => "分配给客服".to_owned(),
            Reason::Reassigned => "超时未回复，改派客服".to_owned(),
            Reason::Queued => "暂无空闲客服，排队".to_owned(),
            Reason::KeptByAgent => "无其他空闲客服，保留原客服".to_owned(),
            Reason::NobodyOnDuty => "无人值班，转留言工单".to_owned(),
            Reason::AgentReleased(ReleaseReason::Offline) => "客服离线，重新分配".to_owned(),
            Reason::AgentReleased(ReleaseReason::Departed) => "客服离职，重新分配".to_owned(),
            Reason::AgentReplyTimeout => "客服超时未回复".to_owned(),
            Reason::Transferred(TransferTarget::Agent(a)) => format!("转接给客服 {a}"),
            Reason::Transferred(TransferTarget::Group(g)) => format!("转接到组 {g}"),
            Reason::Closed(CloseReason::Agent(a)) => format!("客服 {a} 结束会话"),
            Reason::Closed(CloseReason::Timeout) => "超时自动结束".to_owned(),
            Reason::Closed(CloseReason::Customer) => "客户结束会话".to_owned(),
            Reason::Closed(CloseReason::System) => "系统结束会话".to_owned(),
        }
    }
}

impl fmt::Display for Reason {
    /// English.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let via = |v: &HandoffVia| match v {
            HandoffVia::Keyword => "keyword",
            HandoffVia::MenuClick => "menu",
            HandoffVia::WidgetButton => "widget button",
            HandoffVia::RobotGaveUp => "robot gave up",
        };
        match self {
            Reason::RobotAnswers => f.write_str("robot answers"),
            Reason::WaitingForHuman => f.write_str("message while queued"),
            Reason::ForwardedToAgent => f.write_str("forwarded to agent"),
            Reason::AskedAgainWhileWaiting => f.write_str("asked again for a human while queued"),
            Reason::AlreadyWithAgent => f.write_str("already with an agent"),
            Reason::Reopened => f.write_str("reopened"),
            Reason::HumanRequested(v) => write!(f, "human requested ({})", via(v)),
            Reason::ReopenedForHuman(v) => write!(f, "reopened, human requested ({})", via(v)),
            Reason::Assigned => f.write_str("assigned"),
            Reason::Reassigned => f.write_str("reassigned after reply timeout"),
            Reason::Queued => f.write_str("no agent free: queued"),
            Reason::KeptByAgent => f.write_str("no other agent free: kept"),
            Reason::NobodyOnDuty => f.write_str("nobody on duty: leave-a-message ticket"),
            Reason::AgentReleased(ReleaseReason::Offline) => {
                f.write_str("agent offline: re-routed")
            }
            Reason::AgentReleased(ReleaseReason::Departed) => {
                f.write_str("agent departed: re-routed")
            }
            Reason::AgentReplyTimeout => f.write_str("agent reply timeout"),
            Reason::Transferred(TransferTarget::Agent(a)) => write!(f, "transferred to agent {a}"),
            Reason::Transferred(TransferTarget::Group(g)) => write!(f, "transferred to group {g}"),
            Reason::Closed(CloseReason::Agent(a)) => write!(f, "closed by agent {a}"),
            Reason::Closed(CloseReason::Timeout) => f.write_str("closed: customer idle"),
            Reason::Closed(CloseReason::Customer) => f.write_str("closed by customer"),
            Reason::Closed(CloseReason::System) => f.write_str("closed by system"),
        }
    }
}

/// The result of a valid trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub next: ConversationState,
    pub effects: Vec<Effect>,
    pub reason: Reason,
}

impl Transition {
    /// Whether to write a transition record and publish it: the state
    /// changed, or something noteworthy happened within it.
    pub fn worth_recording(&self, from: &ConversationState) -> bool {
        self.next != *from || !self.reason.is_routine()
    }
}

/// Why a trigger does not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Invalid {
    #[error("the conversation is closed")]
    Closed,
    #[error("the conversation is not waiting for a human")]
    NotWaiting,
    #[error("no agent holds the conversation")]
    NotAssigned,
    #[error("another agent holds the conversation")]
    OtherAgent,
    #[error("that agent already holds the conversation")]
    SameAgent,
    #[error("the robot is not answering this conversation")]
    RobotNotInCharge,
}

/// A trigger that does not apply to the state: usually a stale event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{trigger:?} in state {from:?}: {why}")]
pub struct InvalidTransition {
    pub from: ConversationState,
    pub trigger: Trigger,
    pub why: Invalid,
}

/// The state machine. See the module documentation and `state_tests.rs`,
/// whose table lists every (state, trigger) outcome.
pub fn transition(
    state: &ConversationState,
    trigger: &Trigger,
) -> Result<Transition, InvalidTransition> {
    use ConversationState as S;
    use Effect as E;
    use Trigger as T;

    let ok = |next, reason, effects: &[Effect]| {
        Ok(Transition {
            next,
            effects: effects.to_vec(),
            reason,
        })
    };
    let invalid = |why| {
        Err(InvalidTransition {
            from: *state,
            trigger: *trigger,
            why,
        })
    };
    let route = E::Route {
        scope: Scope::Customer,
        exclude: None,
    };

    match (*state, *trigger) {
        // The robot's own hand-over is meaningless once it is not in charge.
        (
            S::Queued | S::Assigned(_) | S::Closed,
            T::HumanRequested {
                via: HandoffVia::RobotGaveUp,
            },
        ) => invalid(Invalid::RobotNotInCharge),

        (S::Bot, T::CustomerMessage) => ok(S::Bot, Reason::RobotAnswers, &[E::RobotAnswer]),
        (S::Bot, T::HumanRequested { via }) => ok(S::Queued, Reason::HumanRequested(via), &[route]),
        (S::Bot, T::Assigned { .. } | T::NoAgentAvailable | T::NobodyOnDuty) => {
            invalid(Invalid::NotWaiting)
        }
        (S::Bot | S::Queued, T::AgentReleased { .. } | T::AgentReplyTimeout { .. }) => {
            invalid(Invalid::NotAssigned)
        }
        (S::Bot, T::Transferred { .. }) => invalid(Invalid::NotAssigned),
        // A robot-only conversation: no survey, nobody to release.
        (S::Bot, T::Closed { by }) => ok(S::Closed, Reason::Closed(by), &[]),

        (S::Queued, T::CustomerMessage) => ok(S::Queued, Reason::WaitingForHuman, &[]),
        (S::Queued, T::HumanRequested { .. }) => ok(
            S::Queued,
            Reason::AskedAgainWhileWaiting,
            &[E::NotifyQueuePosition],
        ),
        (S::Queued, T::Assigned { agent }) => ok(
            S::Assigned(agent),
            Reason::Assigned,
            &[
                E::Dequeue,
                E::NotifyAgent(agent),
                E::BindIfUnbound(agent),
                E::TellCustomer(Notice::AgentJoined(agent)),
            ],
        ),
        (S::Queued, T::NoAgentAvailable) => ok(
            S::Queued,
            Reason::Queued,
            &[E::Enqueue, E::NotifyQueuePosition],
        ),
        // Back to the robot: the ticket carries the request to the next
        // shift, and the customer is not left waiting in a queue overnight.
        (S::Queued, T::NobodyOnDuty) => ok(
            S::Bot,
            Reason::NobodyOnDuty,
            &[
                E::Dequeue,
                E::OpenTicket,
                E::TellCustomer(Notice::NobodyOnDuty),
            ],
        ),
        // A supervisor picks an agent or a group for a waiting customer.
        (
            S::Queued,
            T::Transferred {
                to: to @ TransferTarget::Agent(agent),
            },
        ) => ok(
            S::Assigned(agent),
            Reason::Transferred(to),
            &[
                E::Dequeue,
                E::NotifyAgent(agent),
                E::BindIfUnbound(agent),
                E::TellCustomer(Notice::AgentJoined(agent)),
            ],
        ),
        (
            S::Queued,
            T::Transferred {
                to: to @ TransferTarget::Group(group),
            },
        ) => ok(
            S::Queued,
            Reason::Transferred(to),
            &[
                E::Dequeue,
                E::Route {
                    scope: Scope::Group(group),
                    exclude: None,
                },
            ],
        ),
        (S::Queued, T::Closed { by }) => ok(S::Closed, Reason::Closed(by), &[E::Dequeue]),

        (S::Assigned(a), T::CustomerMessage) => ok(
            S::Assigned(a),
            Reason::ForwardedToAgent,
            &[E::NotifyAgent(a)],
        ),
        (S::Assigned(a), T::HumanRequested { .. }) => ok(
            S::Assigned(a),
            Reason::AlreadyWithAgent,
            &[E::NotifyAgent(a)],
        ),
        (S::Assigned(a), T::Assigned { agent }) if agent == a => invalid(Invalid::SameAgent),
        // The re-offer after a reply timeout found another agent.
        (S::Assigned(a), T::Assigned { agent }) => ok(
            S::Assigned(agent),
            Reason::Reassigned,
            &[
                E::ReleaseAgent(a),
                E::NotifyAgent(agent),
                E::TellCustomer(Notice::AgentJoined(agent)),
            ],
        ),
        // The re-offer found nobody: better the slow agent than a queue.
        (S::Assigned(a), T::NoAgentAvailable | T::NobodyOnDuty) => {
            ok(S::Assigned(a), Reason::KeptByAgent, &[])
        }
        (S::Assigned(a), T::AgentReleased { agent, why }) if agent == a => ok(
            S::Queued,
            Reason::AgentReleased(why),
            &[
                E::ReleaseAgent(a),
                E::Route {
                    scope: Scope::Customer,
                    exclude: Some(a),
                },
            ],
        ),
        (S::Assigned(a), T::AgentReplyTimeout { agent }) if agent == a => ok(
            S::Assigned(a),
            Reason::AgentReplyTimeout,
            &[
                E::AlertSupervisor(a),
                E::Route {
                    scope: Scope::Customer,
                    exclude: Some(a),
                },
            ],
        ),
        (S::Assigned(_), T::AgentReleased { .. } | T::AgentReplyTimeout { .. }) => {
            invalid(Invalid::OtherAgent)
        }
        (
            S::Assigned(a),
            T::Transferred {
                to: TransferTarget::Agent(b),
            },
        ) if a == b => invalid(Invalid::SameAgent),
        // Transfers never move the customer's binding.
        (
            S::Assigned(a),
            T::Transferred {
                to: to @ TransferTarget::Agent(b),
            },
        ) => ok(
            S::Assigned(b),
            Reason::Transferred(to),
            &[
                E::ReleaseAgent(a),
                E::NotifyAgent(b),
                E::TellCustomer(Notice::AgentJoined(b)),
            ],
        ),
        (
            S::Assigned(a),
            T::Transferred {
                to: to @ TransferTarget::Group(group),
            },
        ) => ok(
            S::Queued,
            Reason::Transferred(to),
            &[
                E::ReleaseAgent(a),
                E::Route {
                    scope: Scope::Group(group),
                    exclude: Some(a),
                },
            ],
        ),
        (S::Assigned(a), T::Closed { by }) if by.sends_survey() => ok(
            S::Closed,
            Reason::Closed(by),
            &[E::ReleaseAgent(a), E::SendSurvey],
        ),
        (S::Assigned(a), T::Closed { by }) => {
            ok(S::Closed, Reason::Closed(by), &[E::ReleaseAgent(a)])
        }

        // The next message reopens: the customer's binding (kept on the
        // customer, not the conversation) still steers routing.
        (S::Closed, T::CustomerMessage) => ok(S::Bot, Reason::Reopened, &[E::RobotAnswer]),
        (S::Closed, T::HumanRequested { via }) => {
            ok(S::Queued, Reason::ReopenedForHuman(via), &[route])
        }
        (
            S::Closed,
            T::Assigned { .. }
            | T::NoAgentAvailable
            | T::NobodyOnDuty
            | T::AgentReleased { .. }
            | T::AgentReplyTimeout { .. }
            | T::Transferred { .. }
            | T::Closed { .. },
        ) => invalid(Invalid::Closed),
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
