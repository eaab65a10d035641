//! The customer panel (360° view), as JSON (see `docs/workbench.md`):
//!
//! - `GET /api/customers/{id}`: CRM fields, tags, region, city group,
//!   dedicated agent, channel identities, vehicle trades and the customer's
//!   conversations on every channel;
//! - `GET /api/customers/{id}/messages?before=&limit=`: everything said with
//!   them on every channel and by every agent, oldest first, paged back.
//!
//! Who may look ([`customer_for`]): admins; an agent who is the customer's
//! dedicated agent or serves or served one of their conversations; a
//! supervisor of the customer's city group or of an agent who served them.

use std::collections::{HashMap, HashSet};

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::conversation_api::{ConversationView, MessagePage, MessageView, json, query};
use crate::auth::{CurrentUser, Role};
use crate::http_error::{ApiError, Code};
use crate::ids::{AgentId, CustomerId};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::entities::{customers, vehicle_trades};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/customers/{id}", web::get().to(show))
        .route("/api/customers/{id}/messages", web::get().to(history));
}

/// The customer, if `user` may see them.
pub(crate) async fn customer_for(
    state: &AppState,
    user: &CurrentUser,
    id: CustomerId,
) -> Result<customers::Model, ApiError> {
    let c = match state.store.customer(id).await {
        Ok(c) => c,
        Err(StoreError::NotFound) => return Err(ApiError::new(Code::NotFound, "no such customer")),
        Err(e) => return Err(ApiError::internal(e)),
    };
    if user.role.at_least(Role::Admin) || c.dedicated_agent_id == Some(user.agent_id.0) {
        return Ok(c);
    }
    let served = state.store.agents_who_served(id).await?;
    if served.contains(&user.agent_id) {
        return Ok(c);
    }
    if user.role == Role::Supervisor {
        let mine: HashSet<i64> = state
            .store
            .agent_groups(user.agent_id)
            .await?
            .into_iter()
            .map(|g| g.0)
            .collect();
        if c.city_group_id.is_some_and(|g| mine.contains(&g)) {
            return Ok(c);
        }
        let mut agents = served;
        agents.extend(c.dedicated_agent_id.map(AgentId));
        for a in agents {
            if state
                .store
                .agent_groups(a)
                .await?
                .iter()
                .any(|g| mine.contains(&g.0))
            {
                return Ok(c);
            }
        }
    }
    Err(ApiError::new(
        Code::Forbidden,
        "only the customer's agents and the supervisors of their group may see them",
    ))
}

#[derive(Serialize)]
struct Named {
    id: i64,
    name: String,
}

#[derive(Serialize)]
struct AgentRef {
    id: i64,
    login: String,
    name: String,
}

#[derive(Serialize)]
struct Profile {
    id: i64,
    crm_id: Option<String>,
    name: Option<String>,
    phone: Option<String>,
    region: Option<String>,
    tags: Vec<String>,
    city_group: Option<Named>,
    dedicated_agent: Option<AgentRef>,
    created_at: DateTime<Utc>,
}

#[derive(Serialize)]
struct IdentityView {
    /// `oa_openid`, `wecom_external_userid`, `unionid`, `web_visitor`, `web_user`.
    kind: String,
    /// The account (empty for a unionid) and its name.
    account: String,
    account_name: Option<String>,
    value: String,
    /// Official Account followers: whether they follow it now.
    subscribed: Option<bool>,
}

#[derive(Serialize)]
struct VehicleView {
    crm_id: String,
    plate: Option<String>,
    model: Option<String>,
    order_no: Option<String>,
    payment_status: String,
    payment_updated_at: Option<DateTime<Utc>>,
    sale_status: String,
    sale_updated_at: Option<DateTime<Utc>>,
    details: Option<String>,
    updated_at: DateTime<Utc>,
}

impl From<vehicle_trades::Model> for VehicleView {
    fn from(v: vehicle_trades::Model) -> Self {
        Self {
            crm_id: v.crm_id,
            plate: v.plate,
            model: v.model,
            order_no: v.order_no,
            payment_status: v.payment_status,
            payment_updated_at: v.payment_updated_at,
            sale_status: v.sale_status,
            sale_updated_at: v.sale_updated_at,
            details: v.details,
            updated_at: v.updated_at,
        }
    }
}

#[derive(Serialize)]
struct PanelConversation {
    #[serde(flatten)]
    conversation: ConversationView,
    /// Who serves it now, or served it last.
    agent_name: Option<String>,
}

#[derive(Serialize)]
struct Panel {
    customer: Profile,
    identities: Vec<IdentityView>,
    vehicles: Vec<VehicleView>,
    conversations: Vec<PanelConversation>,
}

/// Comma-separated tags as a list.
pub(crate) fn tags_of(tags: Option<&str>) -> Vec<String> {
    tags.map(|t| {
        t.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    })
    .unwrap_or_default()
}

/// `GET /api/customers/{id}`.
async fn show(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = CustomerId(path.into_inner());
    let c = customer_for(&state, &user, id).await?;
    let store = &state.store;
    let groups: HashMap<i64, String> = store
        .city_groups()
        .await?
        .into_iter()
        .map(|(g, n)| (g.0, n))
        .collect();
    let mut names: HashMap<i64, (String, String)> = HashMap::new();
    let mut agent = async |a: i64| -> Result<Option<(String, String)>, ApiError> {
        if let Some(n) = names.get(&a) {
            return Ok(Some(n.clone()));
        }
        match store.agent(AgentId(a)).await {
            Ok(m) => {
                names.insert(a, (m.login.clone(), m.name.clone()));
                Ok(Some((m.login, m.name)))
            }
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(ApiError::internal(e)),
        }
    };
    let dedicated_agent = match c.dedicated_agent_id {
        Some(a) => agent(a)
            .await?
            .map(|(login, name)| AgentRef { id: a, login, name }),
        None => None,
    };
    let convs = store.customer_conversations(id).await?;
    let unheld: Vec<i64> = convs
        .iter()
        .filter(|c| c.agent_id.is_none())
        .map(|c| c.id)
        .collect();
    let last = store.last_agents_of(&unheld).await?;
    let mut conversations = Vec::new();
    for conv in convs {
        let who = conv
            .agent_id
            .map(AgentId)
            .or_else(|| last.get(&conv.id).copied());
        let agent_name = match who {
            Some(a) => agent(a.0).await?.map(|(_, n)| n),
            None => None,
        };
        conversations.push(PanelConversation {
            conversation: conv.into(),
            agent_name,
        });
    }
    let identities = store
        .identities_of(id)
        .await?
        .into_iter()
        .map(|i| IdentityView {
            account_name: state
                .channels
                .get_any(&i.account_id)
                .map(|a| a.account.name.clone()),
            kind: i.kind,
            account: i.account_id,
            value: i.value,
            subscribed: i.subscribed,
        })
        .collect();
    let vehicles = store
        .vehicle_trades_of(id)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(json(&Panel {
        customer: Profile {
            id: c.id,
            tags: tags_of(c.tags.as_deref()),
            city_group: c.city_group_id.map(|g| Named {
                id: g,
                name: groups.get(&g).cloned().unwrap_or_default(),
            }),
            crm_id: c.crm_id,
            name: c.name,
            phone: c.phone,
            region: c.region,
            dedicated_agent,
            created_at: c.created_at,
        },
        identities,
        vehicles,
        conversations,
    }))
}

#[derive(Serialize)]
struct HistoryMessage {
    #[serde(flatten)]
    message: MessageView,
    conversation_id: Option<i64>,
    channel: String,
    account_id: String,
}

#[derive(Serialize)]
struct History {
    messages: Vec<HistoryMessage>,
    /// Older messages remain: ask again with `before` = the first id here.
    more: bool,
}

/// `GET /api/customers/{id}/messages`.
async fn history(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<i64>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = CustomerId(path.into_inner());
    let page: MessagePage = query(&req)?;
    customer_for(&state, &user, id).await?;
    let limit = page.limit();
    let mut rows = state
        .store
        .customer_messages(id, page.before(), limit + 1)
        .await?;
    let more = rows.len() as u64 > limit;
    if more {
        rows.remove(0);
    }
    Ok(json(&History {
        messages: rows
            .into_iter()
            .map(|m| HistoryMessage {
                conversation_id: m.conversation_id,
                channel: m.channel.clone(),
                account_id: m.account_id.clone(),
                message: m.into(),
            })
            .collect(),
        more,
    }))
}
