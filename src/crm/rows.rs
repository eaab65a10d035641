//! The rows the CRM sends, as JSON (the CSV import maps its columns onto
//! the same fields). Unknown fields are refused: a misspelt field is an
//! error, not silently nothing.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::apply::version;

/// The kinds of rows, as named in paths and on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Groups,
    Regions,
    Agents,
    AgentEvents,
    Bindings,
    Shifts,
    Customers,
    Vehicles,
}

impl Kind {
    pub fn from_path(s: &str) -> Option<Kind> {
        Some(match s {
            "groups" => Kind::Groups,
            "regions" => Kind::Regions,
            "agents" => Kind::Agents,
            "agent-events" => Kind::AgentEvents,
            "bindings" => Kind::Bindings,
            "shifts" => Kind::Shifts,
            "customers" => Kind::Customers,
            "vehicles" => Kind::Vehicles,
            _ => return None,
        })
    }
}

/// A city group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupIn {
    pub id: String,
    pub name: String,
    #[serde(deserialize_with = "version")]
    pub version: i64,
}

/// A region → group entry; `group: null` removes the region.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionIn {
    pub region: String,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(deserialize_with = "version")]
    pub version: i64,
}

fn agent_role() -> String {
    "agent".into()
}

/// An agent; `groups` by CRM id, the first is their home group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentIn {
    pub id: String,
    pub login: String,
    pub name: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub capacity: Option<i32>,
    #[serde(default = "agent_role")]
    pub role: String,
    #[serde(deserialize_with = "version")]
    pub version: i64,
}

/// An agent's lifecycle event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentEvent {
    /// 离职: left the company.
    Left,
    /// 调岗: moved to another city group.
    Transferred,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentEventIn {
    pub agent: String,
    pub event: AgentEvent,
    /// The new group (transfers).
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "version")]
    pub version: i64,
}

/// A customer's dedicated agent; `agent: null` unbinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingIn {
    pub customer: String,
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(deserialize_with = "version")]
    pub version: i64,
}

/// One span of a shift day, in the CRM's time zone (`crm.utc_offset_hours`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SpanIn {
    pub start: String,
    pub end: String,
}

/// An agent's whole day: replaces what was on record for it. No shifts is
/// a day off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShiftIn {
    pub agent: String,
    pub day: NaiveDate,
    #[serde(default)]
    pub shifts: Vec<SpanIn>,
    #[serde(deserialize_with = "version")]
    pub version: i64,
}

/// A channel identity scoped to an account (`account` is the Kefu account
/// id, as in `wechat-config/accounts/`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopedId {
    pub account: String,
    pub id: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitiesIn {
    #[serde(default)]
    pub unionid: Option<String>,
    #[serde(default)]
    pub oa_openid: Vec<ScopedId>,
    #[serde(default)]
    pub wecom_external_userid: Vec<ScopedId>,
    /// The user id of the company's website (the widget's signed login).
    #[serde(default)]
    pub web_user: Option<String>,
}

/// A customer; absent fields keep what is stored.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerIn {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    /// Their city group, by CRM id.
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub identities: IdentitiesIn,
    #[serde(deserialize_with = "version")]
    pub version: i64,
}

/// A vehicle trade.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VehicleIn {
    pub id: String,
    /// The customer, by CRM id.
    pub customer: String,
    #[serde(default)]
    pub plate: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub order_no: Option<String>,
    pub payment_status: String,
    #[serde(default)]
    pub payment_updated_at: Option<DateTime<Utc>>,
    pub sale_status: String,
    #[serde(default)]
    pub sale_updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub details: Option<Value>,
    #[serde(deserialize_with = "version")]
    pub version: i64,
}
