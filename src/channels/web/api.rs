//! The visitor API (`/widget/api/…`, see `docs/widget.md`): a visitor
//! starts or resumes a chat, writes, asks for a person, and hears what is
//! said to them over a WebSocket or a long poll. Their messages go through
//! the same ingest and pipeline as WeChat's (channel `web`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use chrono::Utc;
use futures_util::StreamExt as _;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Digest as _;
use tokio::sync::mpsc;

use super::hub::SOCKET_QUEUE;
use super::view;
use crate::config::Site;
use crate::http_error::{ApiError, Code, checked_client_id};
use crate::ids::{AccountId, CustomerId, MessageId};
use crate::state::AppState;
use crate::store::followers::IdentityKind;
use crate::store::messages::{Channel, Direction, Inserted, NewInbound};

/// Messages a session answer and a resume carry at most.
const RECENT: u64 = 50;
/// How long a long poll waits for something new.
const POLL_FOR: Duration = Duration::from_secs(25);
/// Largest frame a visitor's tab may send.
const MAX_FRAME: usize = 4 * 1024;
/// The socket's ping period; a tab silent for three is gone.
const PING_EVERY: Duration = Duration::from_secs(25);
/// A visitor's typing is passed on at most this often.
const TYPING_EVERY: Duration = Duration::from_secs(3);

pub fn routes(cfg: &mut web::ServiceConfig) {
    let limit = web::JsonConfig::default()
        .limit(16 * 1024)
        .error_handler(|e, _| ApiError::new(Code::BadRequest, e.to_string()).into());
    cfg.service(
        web::scope("/widget/api")
            .app_data(limit)
            .route("/session", web::post().to(session))
            .route("/messages", web::post().to(send))
            .route("/handoff", web::post().to(handoff))
            .route("/leave-message", web::post().to(leave_message))
            .route("/poll", web::get().to(poll))
            .route("/read", web::post().to(read))
            .configure(super::media::routes)
            .route("/ws", web::get().to(socket))
            .route("/{any:.*}", web::method(Method::OPTIONS).to(preflight)),
    );
}

/// A visitor: the site and the id their token hashes to.
#[derive(Debug, Clone)]
pub(super) struct Visitor {
    pub(super) site: Site,
    /// The identity value and message sender: `w` and 32 hex digits of the
    /// token's SHA-256. The token itself is never stored.
    pub(super) id: String,
}

/// A new visitor token: the site id, a dot, 43 random URL-safe characters.
fn new_token(site: &AccountId) -> String {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    format!(
        "{site}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The visitor id a well-formed token stands for, and its site id.
fn parse_token(token: &str) -> Option<(&str, String)> {
    let (site, secret) = token.split_once('.')?;
    let well_formed = secret.len() == 43
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed || AccountId::parse(site).is_err() {
        return None;
    }
    let digest = sha2::Sha256::digest(token.as_bytes());
    Some((
        site,
        format!("w{}", crate::media::rules::hex(&digest[..16])),
    ))
}

fn visitor_of(state: &AppState, token: &str) -> Option<Visitor> {
    let (site, id) = parse_token(token)?;
    Some(Visitor {
        site: state.settings.site(site)?.clone(),
        id,
    })
}

/// The visitor of `Authorization: Visitor <token>` (or `?visitor=` for
/// sockets, which cannot send headers).
fn authorized(
    state: &AppState,
    req: &HttpRequest,
    query: Option<&str>,
) -> Result<Visitor, ApiError> {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Visitor "));
    let token = header.or(query).ok_or_else(|| {
        ApiError::new(
            Code::Unauthorized,
            "no visitor token: start with POST /widget/api/session",
        )
    })?;
    visitor_of(state, token.trim()).ok_or_else(|| {
        ApiError::new(
            Code::Unauthorized,
            "unknown visitor token: start a new session",
        )
    })
}

/// Kefu's own origin as the browser names it.
fn own_origin(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

/// Whether the request's page may use this site's widget: no `Origin`
/// (not a browser page), Kefu's own pages (the chat page), or one of the
/// site's origins. `Ok(Some(origin))`: answer with CORS headers for it.
fn check_origin(req: &HttpRequest, site: Option<&Site>) -> Result<Option<String>, ApiError> {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
    else {
        return Ok(None);
    };
    let origin = origin.trim_end_matches('/');
    if origin == own_origin(req) {
        return Ok(None);
    }
    match site {
        Some(s) if s.allows_origin(origin) => Ok(Some(origin.to_owned())),
        _ => Err(ApiError::new(
            Code::Forbidden,
            format!("the page at {origin} may not use this site's chat (see allowed_origins)"),
        )),
    }
}

/// The answer, with CORS headers for a foreign page the site allows.
pub(super) fn answer(result: Result<HttpResponse, ApiError>, cors: Option<&str>) -> HttpResponse {
    let mut res = match result {
        Ok(r) => r,
        Err(e) => actix_web::ResponseError::error_response(&e),
    };
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(o) = cors.and_then(|o| HeaderValue::from_str(o).ok()) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
    }
    res
}

/// CORS preflight: allowed when some site lists the page's origin.
async fn preflight(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let Some(origin) = cors_any(&state, &req) else {
        return answer(
            Err(ApiError::new(
                Code::Forbidden,
                "this origin may not use the chat",
            )),
            None,
        );
    };
    let mut res = HttpResponse::NoContent().finish();
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    answer(Ok(res), Some(&origin))
}

/// The visitor's customer, made on first use, with a region guessed from
/// their address for routing.
async fn customer_of(
    state: &AppState,
    req: &HttpRequest,
    v: &Visitor,
) -> Result<CustomerId, ApiError> {
    let identity = state
        .store
        .identity(IdentityKind::WebVisitor, &v.site.id, &v.id)
        .await?;
    let customer = CustomerId(identity.customer_id);
    // Made just now: a newcomer, whose region routing wants.
    if identity.created_at >= Utc::now() - chrono::Duration::seconds(5)
        && let Some(ip) = client_ip(state, req)
        && let Some(city) = state
            .regions
            .resolve(ip)
            .and_then(|r| r.routing_key().map(str::to_owned))
    {
        state
            .store
            .set_customer_region_if_unset(customer, &city)
            .await?;
    }
    Ok(customer)
}

/// The customer of a visitor who has written or connected before, if any.
pub(super) async fn known_customer(
    state: &AppState,
    v: &Visitor,
) -> Result<Option<CustomerId>, ApiError> {
    Ok(state
        .store
        .find_identity_of(IdentityKind::WebVisitor, &v.site.id, &v.id)
        .await?
        .map(|i| CustomerId(i.customer_id)))
}

/// The visitor's address: the peer's, or behind `[widget]
/// trusted_proxies` the one they forwarded for.
fn client_ip(state: &AppState, req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|h| h.to_str().ok())
        .collect();
    let joined = forwarded.join(",");
    Some(
        state
            .widget
            .guards()
            .proxies
            .client_ip(peer, (!joined.is_empty()).then_some(joined.as_str())),
    )
}

/// Too many requests: a 429 saying when to come back.
fn limited(retry: Duration, what: &str) -> HttpResponse {
    let secs = super::limits::retry_after_secs(retry);
    let mut res = actix_web::ResponseError::error_response(&ApiError::new(
        Code::TooManyRequests,
        format!("{what}: too many, try again in {secs} s"),
    ));
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

async fn conversation_json(
    state: &AppState,
    customer: CustomerId,
    site: &AccountId,
) -> Result<Value, ApiError> {
    Ok(
        match state.store.latest_conversation_of(customer, site).await? {
            Some(c) => view::conversation(&state.store, &c, state.widget.names()).await,
            None => Value::Null,
        },
    )
}

#[derive(Deserialize)]
struct SessionRequest {
    key: String,
    visitor: Option<String>,
    /// The site's signed token for its logged-in user (docs/widget-login.md).
    login: Option<String>,
}

/// A signed-in user of the site, recognised: their CRM customer now owns
/// the visitor (a guest conversation they had joins their history).
#[derive(Debug)]
struct LoggedIn {
    user_id: String,
    name: Option<String>,
    /// The visitor token to use from now on (new when the browser's
    /// visitor belonged to another signed-in user).
    token: String,
}

/// Checks the site's login token and links the visitor to the CRM customer
/// it names. `Err(reason)`: refused, the visitor stays a guest.
async fn log_in(
    state: &AppState,
    site: &Site,
    token: &str,
    login: &str,
) -> Result<LoggedIn, String> {
    use crate::store::crm::{CustomerRow, customer_ids, upsert_customer};
    use sea_orm::TransactionTrait as _;
    let secret = site
        .login_secret
        .as_ref()
        .ok_or("the site has no login_secret configured")?;
    let claims = super::login::verify(login, secret.expose().as_bytes(), Utc::now())
        .map_err(|e| e.to_string())?;
    let fresh = state
        .store
        .claim_login_nonce(site.id.as_str(), &claims.nonce, claims.expires_at)
        .await
        .map_err(|e| format!("not checked: {e}"))?;
    if !fresh {
        return Err("the login token was used before (replayed)".into());
    }
    let known = customer_ids(state.store.conn(), std::slice::from_ref(&claims.user_id))
        .await
        .map_err(|e| format!("not checked: {e}"))?;
    let mut token = token.to_owned();
    for attempt in 0..2 {
        let Some((_, visitor)) = parse_token(&token) else {
            return Err("bad visitor token".into());
        };
        let row = CustomerRow {
            crm_id: claims.user_id.clone(),
            // The CRM's name wins over the site's, once the CRM has one.
            name: claims.name.clone().filter(|_| known.is_empty()),
            identities: vec![(
                IdentityKind::WebVisitor.as_str(),
                site.id.to_string(),
                visitor,
            )],
            ..CustomerRow::default()
        };
        let txn = state
            .store
            .writer()
            .begin()
            .await
            .map_err(|e| e.to_string())?;
        match upsert_customer(&txn, &row).await {
            Ok(up) => {
                txn.commit().await.map_err(|e| e.to_string())?;
                if !up.merged.is_empty() {
                    // Every instance forgets whose the visitor was.
                    state.pipeline.forget_customers();
                    state.bus.publish(crate::bus::Event::CustomersMerged {
                        removed: up.merged.clone(),
                        identities: Vec::new(),
                    });
                    if let Err(e) = state.router.reload(&state.store).await {
                        tracing::warn!(error = %e, "router not reloaded after a visitor signed in");
                    }
                }
                return Ok(LoggedIn {
                    user_id: claims.user_id,
                    name: claims.name,
                    token,
                });
            }
            // This browser's visitor is another signed-in user's: this
            // user gets a visitor of their own.
            Err(crate::store::StoreError::Duplicate) if attempt == 0 => {
                let _ = txn.rollback().await;
                token = new_token(&site.id);
            }
            Err(e) => return Err(format!("not linked: {e}")),
        }
    }
    Err("not linked".into())
}

/// Starts or resumes a visitor.
async fn session(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<SessionRequest>,
) -> HttpResponse {
    let site = state.settings.site_by_key(&body.key).cloned();
    let cors = match check_origin(&req, site.as_ref()) {
        Ok(c) => c,
        Err(e) => return answer(Err(e), None),
    };
    let result = async {
        let site = site
            .ok_or_else(|| ApiError::new(Code::BadRequest, "key: no site has this public key"))?;
        let resumed = body
            .visitor
            .as_deref()
            .and_then(|t| visitor_of(&state, t).map(|v| (t.to_owned(), v)))
            .filter(|(_, v)| v.site.id == site.id);
        let (mut token, mut visitor) = match resumed {
            Some(found) => found,
            None => {
                let ip = client_ip(&state, &req).map(|i| i.to_string()).unwrap_or_default();
                if let Err(retry) = state.widget.guards().sessions.check(&ip).await {
                    return Ok(limited(retry, "new chats from this address"));
                }
                let t = new_token(&site.id);
                let v = visitor_of(&state, &t)
                    .ok_or_else(|| ApiError::internal("a new visitor token did not parse"))?;
                (t, v)
            }
        };
        let mut user = Value::Null;
        let mut login = Value::Null;
        if let Some(signed) = body.login.as_deref() {
            match log_in(&state, &site, &token, signed).await {
                Ok(l) => {
                    if l.token != token {
                        visitor = visitor_of(&state, &l.token).ok_or_else(|| {
                            ApiError::internal("a new visitor token did not parse")
                        })?;
                        token = l.token;
                    }
                    user = json!({"id": l.user_id, "name": l.name});
                    login = json!("accepted");
                }
                Err(reason) => {
                    tracing::info!(site = %site.id, %reason, "a visitor's login token was refused; they stay a guest");
                    login = json!({"refused": reason});
                }
            }
        }
        // A visitor of a signed-in user is theirs only while the site says
        // so: without an accepted login token (signed out, someone else at
        // the same browser, a bad token) the page starts again as a guest.
        if login != "accepted"
            && let Some(c) = known_customer(&state, &visitor).await?
            && state.store.customer(c).await?.crm_id.is_some()
        {
            token = new_token(&site.id);
            visitor = visitor_of(&state, &token)
                .ok_or_else(|| ApiError::internal("a new visitor token did not parse"))?;
        }
        let (conversation, messages) = match known_customer(&state, &visitor).await? {
            Some(c) => {
                let list = state
                    .store
                    .visitor_recent_messages(c, &site.id, RECENT)
                    .await?;
                (
                    conversation_json(&state, c, &site.id).await?,
                    view::messages(&list, state.widget.names()).await,
                )
            }
            None => (Value::Null, Vec::new()),
        };
        Ok(HttpResponse::Ok().json(json!({
            "visitor": token,
            "site": {"id": site.id, "name": site.name},
            "user": user,
            "login": login,
            "on_duty": on_duty(&state),
            "leave_message": {"required": site.leave_message_required},
            "conversation": conversation,
            "messages": messages,
        })))
    }
    .await;
    answer(result, cors.as_deref())
}

#[derive(Deserialize)]
struct SendRequest {
    client_id: String,
    text: String,
}

/// Stores a visitor's text through the ingest (once per client id).
async fn send(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<SendRequest>,
) -> HttpResponse {
    let (visitor, cors) = match visitor_request(&state, &req) {
        Ok(v) => v,
        Err(refused) => return *refused,
    };
    let result = async {
        let max = state.settings.widget.max_text_chars;
        let text = body.text.trim();
        if text.is_empty() {
            return Err(ApiError::new(Code::BadRequest, "text: empty"));
        }
        if text.chars().count() > max {
            return Err(ApiError::new(
                Code::PayloadTooLarge,
                format!("text: longer than {max} characters"),
            ));
        }
        if text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\t'))
        {
            return Err(ApiError::new(Code::BadRequest, "text: control characters"));
        }
        let client_id = checked_client_id(&body.client_id)?.to_owned();
        if let Some(refused) = over_rate(&state, &visitor, &client_id).await? {
            return Ok(refused);
        }
        let (message, conversation) = store_text(&state, &req, &visitor, &client_id, text).await?;
        Ok(HttpResponse::Ok().json(json!({"message": message, "conversation": conversation})))
    }
    .await;
    answer(result, cors.as_deref())
}

/// The visitor of a request and the CORS origin to answer it with, or the
/// refusal (no or bad token, a page of another origin).
pub(super) fn visitor_request(
    state: &AppState,
    req: &HttpRequest,
) -> Result<(Visitor, Option<String>), Box<HttpResponse>> {
    let visitor = authorized(state, req, None)
        .map_err(|e| answer(Err(e), cors_any(state, req).as_deref()))?;
    let cors =
        check_origin(req, Some(&visitor.site)).map_err(|e| Box::new(answer(Err(e), None)))?;
    Ok((visitor, cors))
}

/// A new message costs one of the visitor's rate; a repeat of a stored one
/// (a retry) costs nothing. `Some`: the 429 to answer.
pub(super) async fn over_rate(
    state: &AppState,
    visitor: &Visitor,
    client_id: &str,
) -> Result<Option<HttpResponse>, ApiError> {
    let key = format!("w:{}:{client_id}", visitor.id);
    if state
        .store
        .message_by_key(&visitor.site.id, &key)
        .await?
        .is_some()
    {
        return Ok(None);
    }
    Ok(state
        .widget
        .guards()
        .messages
        .check(&visitor.id)
        .await
        .err()
        .map(|retry| limited(retry, "messages")))
}

/// For an answer given before the site is known (a bad token): CORS
/// headers when some site allows the page, so it can read the error.
fn cors_any(state: &AppState, req: &HttpRequest) -> Option<String> {
    let origin = req.headers().get(header::ORIGIN)?.to_str().ok()?;
    let origin = origin.trim_end_matches('/');
    state
        .settings
        .sites
        .iter()
        .any(|s| s.allows_origin(origin))
        .then(|| origin.to_owned())
}

/// Stores the visitor's text and answers it as the visitor sees it.
async fn store_text(
    state: &AppState,
    req: &HttpRequest,
    v: &Visitor,
    client_id: &str,
    text: &str,
) -> Result<(Value, Value), ApiError> {
    let (stored, conversation) = store_inbound(state, req, v, client_id, "text", text).await?;
    Ok((
        view::message(&stored, state.widget.names()).await,
        conversation,
    ))
}

/// Stores something the visitor did (a text, or the handoff event) through
/// the ingest, once per client id; the stored row and the conversation.
async fn store_inbound(
    state: &AppState,
    req: &HttpRequest,
    v: &Visitor,
    client_id: &str,
    msg_type: &str,
    content: &str,
) -> Result<(crate::store::entities::messages::Model, Value), ApiError> {
    store_sent(state, req, v, client_id, msg_type, Some(content), None).await
}

/// Stores a visitor's message of any kind (`media_object_id`: the file
/// they sent, already in the media store), once per client id.
pub(super) async fn store_sent(
    state: &AppState,
    req: &HttpRequest,
    v: &Visitor,
    client_id: &str,
    msg_type: &str,
    content: Option<&str>,
    media_object_id: Option<i64>,
) -> Result<(crate::store::entities::messages::Model, Value), ApiError> {
    let customer = customer_of(state, req, v).await?;
    let key = format!("w:{}:{client_id}", v.id);
    let msg = NewInbound {
        account: v.site.id.clone(),
        channel: Channel::Web,
        direction: Direction::In,
        sender: v.id.clone(),
        dedup_key: key.clone(),
        msg_type: msg_type.into(),
        content: content.map(str::to_owned),
        payload: json!({
            "type": msg_type,
            "content": content,
            "client_id": client_id,
            "media_object_id": media_object_id,
        })
        .to_string(),
        channel_msg_id: None,
        sent_at: Utc::now(),
        media_object_id,
    };
    let timeout = Duration::from_millis(state.settings.limits.callback_commit_timeout_ms);
    let stored = match state.ingest.ingest(msg, timeout).await {
        Ok(Inserted::New(id)) => state.store.message(id).await?,
        Ok(Inserted::Duplicate) => state
            .store
            .message_by_key(&v.site.id, &key)
            .await?
            .ok_or_else(|| ApiError::internal("a duplicate message was not found"))?,
        Err(e) => {
            tracing::warn!(error = %e, "a visitor's message was not stored");
            return Err(ApiError::new(Code::Unavailable, "not stored: try again"));
        }
    };
    Ok((
        stored,
        conversation_json(state, customer, &v.site.id).await?,
    ))
}

/// The "转人工" button: the visitor asks for a person (an event the
/// pipeline reads as a handoff; the visitor does not see it as a message).
async fn handoff(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let (visitor, cors) = match visitor_request(&state, &req) {
        Ok(v) => v,
        Err(refused) => return *refused,
    };
    let result = async {
        if let Err(retry) = state.widget.guards().messages.check(&visitor.id).await {
            return Ok(limited(retry, "messages"));
        }
        let id = format!("handoff-{}", uuid::Uuid::new_v4().simple());
        let (_, conversation) = store_inbound(
            &state,
            &req,
            &visitor,
            &id,
            "event",
            crate::conversation::pipeline::WIDGET_HANDOFF,
        )
        .await?;
        Ok(HttpResponse::Ok().json(json!({"conversation": conversation})))
    }
    .await;
    answer(result, cors.as_deref())
}

/// Whether anyone is on duty now (on shift, not offline): otherwise the
/// widget offers the leave-a-message form instead of a person.
fn on_duty(state: &AppState) -> bool {
    state
        .router
        .agents(Utc::now())
        .iter()
        .any(|a| a.is_on_duty())
}

#[derive(Deserialize)]
struct LeaveMessage {
    client_id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    message: String,
}

/// The leave-a-message form (nobody on duty): the message is stored as the
/// visitor's, their name and phone kept on the customer when unknown, and
/// the request for a person follows, which routing turns into a ticket for
/// the next shift (or an agent, if one came on duty meanwhile).
async fn leave_message(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<LeaveMessage>,
) -> HttpResponse {
    let (visitor, cors) = match visitor_request(&state, &req) {
        Ok(v) => v,
        Err(refused) => return *refused,
    };
    let result = async {
        let client_id = checked_client_id(&body.client_id)?.to_owned();
        let (name, phone, message) = (body.name.trim(), body.phone.trim(), body.message.trim());
        for (field, value) in [("name", name), ("phone", phone), ("message", message)] {
            if value.is_empty()
                && visitor
                    .site
                    .leave_message_required
                    .iter()
                    .any(|f| f == field)
            {
                return Err(ApiError::new(
                    Code::BadRequest,
                    format!("{field}: required"),
                ));
            }
            if value
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\n' | '\t'))
            {
                return Err(ApiError::new(
                    Code::BadRequest,
                    format!("{field}: control characters"),
                ));
            }
        }
        if name.chars().count() > 32 {
            return Err(ApiError::new(
                Code::BadRequest,
                "name: at most 32 characters",
            ));
        }
        let digits = phone.chars().filter(char::is_ascii_digit).count();
        if !phone.is_empty()
            && (!(5..=20).contains(&digits)
                || !phone
                    .chars()
                    .all(|c| c.is_ascii_digit() || " +-()".contains(c)))
        {
            return Err(ApiError::new(Code::BadRequest, "phone: not a phone number"));
        }
        let max = state.settings.widget.max_text_chars;
        if message.chars().count() > max {
            return Err(ApiError::new(
                Code::PayloadTooLarge,
                format!("message: longer than {max} characters"),
            ));
        }
        if let Some(refused) = over_rate(&state, &visitor, &client_id).await? {
            return Ok(refused);
        }
        let mut text = format!("【留言】{message}");
        if !name.is_empty() {
            text.push_str(&format!("\n姓名：{name}"));
        }
        if !phone.is_empty() {
            text.push_str(&format!("\n电话：{phone}"));
        }
        let (stored, _) = store_inbound(&state, &req, &visitor, &client_id, "text", &text).await?;
        if let Some(c) = stored
            .customer_id
            .map(CustomerId)
            .or(known_customer(&state, &visitor).await?)
        {
            if !name.is_empty() {
                state.store.name_if_unnamed(c, name).await?;
            }
            if !phone.is_empty() {
                state.store.phone_if_unset(c, phone).await?;
            }
        }
        let (_, conversation) = store_inbound(
            &state,
            &req,
            &visitor,
            &format!("{client_id}-handoff"),
            "event",
            crate::conversation::pipeline::WIDGET_HANDOFF,
        )
        .await?;
        Ok(HttpResponse::Ok().json(json!({
            "message": view::message(&stored, state.widget.names()).await,
            "conversation": conversation,
        })))
    }
    .await;
    answer(result, cors.as_deref())
}

#[derive(Deserialize)]
struct After {
    #[serde(default)]
    after: i64,
    visitor: Option<String>,
    /// Long poll: seconds to wait for something new (at most 25).
    wait: Option<u64>,
}

/// The long poll: what came after `after`, at once or within 25 s.
async fn poll(state: web::Data<AppState>, req: HttpRequest, q: web::Query<After>) -> HttpResponse {
    let (visitor, cors) = match visitor_request(&state, &req) {
        Ok(v) => v,
        Err(refused) => return *refused,
    };
    let result = async {
        let customer = customer_of(&state, &req, &visitor).await?;
        let site = visitor.site.id.clone();
        let (tx, mut rx) = mpsc::channel(SOCKET_QUEUE);
        // Listen first, then read: nothing filed in between is missed.
        let tab = state.widget.attach(customer, site.as_str(), tx, false);
        let read = async {
            let list = state
                .store
                .visitor_messages_after(customer, &site, MessageId(q.after), RECENT)
                .await?;
            let wait = q
                .wait
                .map_or(POLL_FOR, |s| Duration::from_secs(s).min(POLL_FOR));
            if list.is_empty() && !wait.is_zero() {
                let _ = tokio::time::timeout(wait, rx.recv()).await;
                return Ok::<_, ApiError>(
                    state
                        .store
                        .visitor_messages_after(customer, &site, MessageId(q.after), RECENT)
                        .await?,
                );
            }
            Ok(list)
        }
        .await;
        state.widget.detach(customer, tab);
        let list = read?;
        Ok(HttpResponse::Ok().json(json!({
            "messages": view::messages(&list, state.widget.names()).await,
            "conversation": conversation_json(&state, customer, &site).await?,
        })))
    }
    .await;
    answer(result, cors.as_deref())
}

/// The visitor's WebSocket: what came after `after`, then live frames.
async fn socket(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<After>,
    body: web::Payload,
) -> HttpResponse {
    let visitor = match authorized(&state, &req, q.visitor.as_deref()) {
        Ok(v) => v,
        Err(e) => return answer(Err(e), None),
    };
    if let Err(e) = check_origin(&req, Some(&visitor.site)) {
        return answer(Err(e), None);
    }
    let customer = match customer_of(&state, &req, &visitor).await {
        Ok(c) => c,
        Err(e) => return answer(Err(e), None),
    };
    let (response, session, stream) = match actix_ws::handle(&req, body) {
        Ok(x) => x,
        Err(e) => {
            return answer(Err(ApiError::new(Code::BadRequest, e.to_string())), None);
        }
    };
    let stream = stream.max_frame_size(MAX_FRAME);
    actix_web::rt::spawn(serve(
        state.into_inner(),
        visitor,
        customer,
        MessageId(q.after),
        session,
        stream,
    ));
    response
}

async fn serve(
    state: Arc<AppState>,
    visitor: Visitor,
    customer: CustomerId,
    after: MessageId,
    mut session: actix_ws::Session,
    mut stream: actix_ws::MessageStream,
) {
    let site = visitor.site.id.clone();
    let (tx, mut rx) = mpsc::channel::<Arc<str>>(SOCKET_QUEUE);
    let conversation = state
        .store
        .latest_conversation_of(customer, &site)
        .await
        .ok()
        .flatten();
    let queued = conversation.as_ref().is_some_and(|c| c.state == "queued");
    // Listen first, then catch up: a message filed in between comes twice
    // at most, and the tab keeps the first.
    let tab = state.widget.attach(customer, site.as_str(), tx, queued);
    let mut last = after.0;
    let mut ok = true;
    let names = state.widget.names().clone();
    let missed = state
        .store
        .visitor_messages_after(customer, &site, after, 1000)
        .await
        .unwrap_or_default();
    for m in &missed {
        last = last.max(m.id);
        let frame = json!({"type": "message", "message": view::message(m, &names).await});
        ok = ok && session.text(frame.to_string()).await.is_ok();
    }
    if ok && let Some(c) = &conversation {
        let frame = json!({"type": "conversation", "conversation": view::conversation(&state.store, c, &names).await});
        ok = session.text(frame.to_string()).await.is_ok();
    }
    let phase = Duration::from_millis(rand::random_range(0..PING_EVERY.as_millis() as u64));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + phase, PING_EVERY);
    let mut heard = tokio::time::Instant::now();
    let mut last_typed: Option<tokio::time::Instant> = None;
    // The newest message this socket sent, and the read mark it passed on.
    let mut delivered = last;
    let mut read = 0;
    while ok {
        tokio::select! {
            frame = rx.recv() => match frame {
                Some(f) => {
                    // Skip what the catch-up already sent.
                    let id = serde_json::from_str::<Value>(&f).ok().and_then(|v| v["message"]["id"].as_i64());
                    if id.is_some_and(|id| id <= last) {
                        continue;
                    }
                    delivered = delivered.max(id.unwrap_or(0));
                    ok = session.text(f.to_string()).await.is_ok();
                }
                // Dropped for being slow, or the hub lagged: the tab
                // reconnects and resumes.
                None => break,
            },
            msg = stream.next() => {
                heard = tokio::time::Instant::now();
                match msg {
                    Some(Ok(actix_ws::Message::Text(t))) => match tab_frame(&t) {
                        Some(TabFrame::Typing)
                            if last_typed.is_none_or(|at| at.elapsed() >= TYPING_EVERY) =>
                        {
                            last_typed = Some(tokio::time::Instant::now());
                            announce_typing(&state, customer, &site).await;
                        }
                        // Only what this socket delivered, only forward.
                        Some(TabFrame::Read(up_to)) => {
                            let up_to = up_to.min(delivered);
                            if up_to > read {
                                read = up_to;
                                if let Err(e) = visitor_read(&state, customer, &site, up_to).await {
                                    tracing::debug!(error = %e, "a visitor's read mark was not kept");
                                }
                            }
                        }
                        Some(TabFrame::Typing) | None => {}
                    },
                    Some(Ok(actix_ws::Message::Ping(b))) => ok = session.pong(&b).await.is_ok(),
                    Some(Ok(actix_ws::Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                }
            }
            _ = ping.tick() => {
                if heard.elapsed() > PING_EVERY * 3 {
                    break;
                }
                ok = session.ping(b"").await.is_ok();
            }
        }
    }
    state.widget.detach(customer, tab);
    let _ = session.close(None).await;
}

/// What a visitor's tab may say on its socket.
#[derive(Debug, PartialEq, Eq)]
enum TabFrame {
    /// `{"type": "typing"}`.
    Typing,
    /// `{"type": "read", "up_to": <message id>}`: the visitor has seen
    /// the conversation up to that message.
    Read(i64),
}

fn tab_frame(frame: &str) -> Option<TabFrame> {
    let v: Value = serde_json::from_str(frame).ok()?;
    match v["type"].as_str()? {
        "typing" => Some(TabFrame::Typing),
        "read" => v["up_to"].as_i64().filter(|n| *n > 0).map(TabFrame::Read),
        _ => None,
    }
}

/// The visitor has seen their conversation up to `up_to`, a message of
/// their latest conversation: kept (only forward) and told to the agents
/// serving or watching it. Anything else is ignored.
async fn visitor_read(
    state: &AppState,
    customer: CustomerId,
    site: &AccountId,
    up_to: i64,
) -> Result<(), ApiError> {
    let Some(c) = state.store.latest_conversation_of(customer, site).await? else {
        return Ok(());
    };
    let Ok(m) = state.store.message(MessageId(up_to)).await else {
        return Ok(());
    };
    let conversation = crate::ids::ConversationId(c.id);
    if m.conversation_id == Some(c.id)
        && state
            .store
            .mark_customer_read(conversation, MessageId(up_to))
            .await?
    {
        state.bus.publish(crate::bus::Event::Read {
            conversation,
            customer,
            account: site.to_string(),
            agent: None,
            up_to: MessageId(up_to),
        });
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadRequest {
    up_to: i64,
}

/// `POST /widget/api/read {"up_to": <message id>}`: the read mark of a page
/// on the long-poll fallback (a socket says it as a frame).
async fn read(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<ReadRequest>,
) -> HttpResponse {
    let (visitor, cors) = match visitor_request(&state, &req) {
        Ok(v) => v,
        Err(refused) => return *refused,
    };
    let result = async {
        if body.up_to <= 0 {
            return Err(ApiError::new(Code::BadRequest, "up_to: a message id"));
        }
        if let Some(customer) = known_customer(&state, &visitor).await? {
            visitor_read(&state, customer, &visitor.site.id, body.up_to).await?;
        }
        Ok(HttpResponse::NoContent().finish())
    }
    .await;
    answer(result, cors.as_deref())
}

/// Tells the agents serving the visitor that they are typing.
async fn announce_typing(state: &AppState, customer: CustomerId, site: &AccountId) {
    if let Ok(Some(c)) = state.store.open_conversation_of(customer, site).await
        && c.state == "assigned"
    {
        state.bus.publish(crate::bus::Event::Typing {
            conversation: crate::ids::ConversationId(c.id),
            customer,
            account: site.to_string(),
            agent: None,
        });
    }
}
