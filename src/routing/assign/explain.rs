//! Explanations: why an agent was (or was not) chosen, in Chinese and
//! English, stored with every decision and shown to supervisors.

use serde::{Deserialize, Serialize};

use super::Decision;
use crate::ids::GroupId;

/// Why an agent (in reasons: the dedicated agent) was not given the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotAvailable {
    /// Departed, or no longer known to Kefu: the customer is rebound.
    Left,
    /// No longer in the customer's group: the customer is rebound.
    MovedGroup,
    /// The conversation is being re-routed away from them (offline, reply
    /// timeout).
    Released,
    /// A transfer to a group they are not in.
    OutsideTarget,
    OffShift,
    Offline,
    OnBreak,
    Busy,
    AtCapacity,
}

impl NotAvailable {
    /// "专属客服休息中"…
    pub fn zh(self) -> &'static str {
        match self {
            NotAvailable::Left => "专属客服已离职",
            NotAvailable::MovedGroup => "专属客服已调离本组",
            NotAvailable::Released => "已从专属客服转出",
            NotAvailable::OutsideTarget => "专属客服不在目标组",
            NotAvailable::OffShift => "专属客服不在班",
            NotAvailable::Offline => "专属客服离线",
            NotAvailable::OnBreak => "专属客服休息中",
            NotAvailable::Busy => "专属客服忙碌中",
            NotAvailable::AtCapacity => "专属客服已满负荷",
        }
    }

    /// "dedicated agent on break"…
    pub fn en(self) -> &'static str {
        match self {
            NotAvailable::Left => "dedicated agent has left",
            NotAvailable::MovedGroup => "dedicated agent moved to another group",
            NotAvailable::Released => "re-routed away from dedicated agent",
            NotAvailable::OutsideTarget => "dedicated agent not in target group",
            NotAvailable::OffShift => "dedicated agent off shift",
            NotAvailable::Offline => "dedicated agent offline",
            NotAvailable::OnBreak => "dedicated agent on break",
            NotAvailable::Busy => "dedicated agent busy",
            NotAvailable::AtCapacity => "dedicated agent at capacity",
        }
    }

    /// Whether the binding must move (the agent left or changed group).
    pub(super) fn needs_rebind(self) -> bool {
        matches!(self, NotAvailable::Left | NotAvailable::MovedGroup)
    }
}

/// A group as named in a reason, so the explanation survives a rename.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupLabel {
    pub id: GroupId,
    pub name: String,
}

impl GroupLabel {
    /// `上海` → `上海组` (unchanged when it already ends in 组).
    pub fn zh(&self) -> String {
        if self.name.ends_with('组') {
            self.name.clone()
        } else {
            format!("{}组", self.name)
        }
    }
}

impl Decision {
    pub fn reason(&self) -> &DecisionReason {
        match self {
            Decision::Assign { reason, .. }
            | Decision::Queue { reason, .. }
            | Decision::NobodyOnDuty { reason, .. } => reason,
        }
    }

    /// The explanation in Chinese: `专属客服`, `同组：专属客服休息中`,
    /// `地区 上海 → 上海组`, `无地区：负载最低`, `排队（…）：暂无空闲客服`.
    pub fn explain_zh(&self) -> String {
        let scope = self.reason().zh();
        match self {
            Decision::Assign { reason, .. } if reason.picks_least_loaded_anywhere() => {
                format!("{scope}：负载最低")
            }
            Decision::Assign { .. } => scope,
            Decision::Queue { .. } => format!("排队（{scope}）：暂无空闲客服"),
            Decision::NobodyOnDuty { .. } => format!("无人值班（{scope}）：留言工单"),
        }
    }

    /// The explanation in English: `dedicated agent`, `same group: dedicated
    /// agent on break`, `region 上海 → group 上海`, `no region: least loaded`.
    pub fn explain_en(&self) -> String {
        let scope = self.reason().en();
        match self {
            Decision::Assign { reason, .. } if reason.picks_least_loaded_anywhere() => {
                format!("{scope}: least loaded")
            }
            Decision::Assign { .. } => scope,
            Decision::Queue { .. } => format!("queued ({scope}): no agent free"),
            Decision::NobodyOnDuty { .. } => {
                format!("nobody on duty ({scope}): leave-a-message ticket")
            }
        }
    }
}

/// Why this agent, or why this group's queue: how the scope was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum DecisionReason {
    /// The customer's dedicated agent.
    Dedicated,
    /// The customer's new dedicated agent, after a rebind.
    NewDedicated { previous: NotAvailable },
    /// Another agent of the dedicated agent's group.
    SameGroup {
        group: GroupLabel,
        dedicated: NotAvailable,
    },
    /// The customer's group from the CRM (no dedicated agent).
    CustomerGroup { group: GroupLabel },
    /// First contact: region → group.
    Region { region: String, group: GroupLabel },
    /// A transfer to a group.
    TransferGroup { group: GroupLabel },
    /// No region known: anyone.
    NoRegion,
    /// A region no group serves: anyone.
    UnmappedRegion { region: String },
}

impl DecisionReason {
    pub fn zh(&self) -> String {
        match self {
            DecisionReason::Dedicated => "专属客服".to_owned(),
            DecisionReason::NewDedicated { previous } => {
                format!("新专属客服（{}）", previous.zh())
            }
            DecisionReason::SameGroup { dedicated, .. } => format!("同组：{}", dedicated.zh()),
            DecisionReason::CustomerGroup { group } => format!("所属组 {}", group.zh()),
            DecisionReason::Region { region, group } => {
                format!("地区 {region} → {}", group.zh())
            }
            DecisionReason::TransferGroup { group } => format!("转接 → {}", group.zh()),
            DecisionReason::NoRegion => "无地区".to_owned(),
            DecisionReason::UnmappedRegion { region } => format!("地区 {region} 无对应组"),
        }
    }

    pub fn en(&self) -> String {
        match self {
            DecisionReason::Dedicated => "dedicated agent".to_owned(),
            DecisionReason::NewDedicated { previous } => {
                format!("new dedicated agent ({})", previous.en())
            }
            DecisionReason::SameGroup { dedicated, .. } => {
                format!("same group: {}", dedicated.en())
            }
            DecisionReason::CustomerGroup { group } => format!("customer's group {}", group.name),
            DecisionReason::Region { region, group } => {
                format!("region {region} → group {}", group.name)
            }
            DecisionReason::TransferGroup { group } => format!("transfer → group {}", group.name),
            DecisionReason::NoRegion => "no region".to_owned(),
            DecisionReason::UnmappedRegion { region } => format!("region {region} has no group"),
        }
    }

    fn picks_least_loaded_anywhere(&self) -> bool {
        matches!(
            self,
            DecisionReason::NoRegion | DecisionReason::UnmappedRegion { .. }
        )
    }
}
