//! Visitors' pictures, recordings, videos and files (`docs/widget.md`).
//!
//! - `POST /widget/api/media?client_id=…&name=…`: the body is the file
//!   itself, as the browser has it (`Content-Type` declared), like the
//!   console's upload. Its kind is read from its first bytes
//!   ([`crate::media::outgoing`], web rules: what a browser plays), a
//!   declared length over that kind's limit is refused before reading, and
//!   reading stops at the limit. Stored in the media store like WeChat's
//!   media and filed as the visitor's message of that kind, once per client
//!   id (a retry reads nothing and answers the stored message). It costs
//!   one of the visitor's messages in the rate limit.
//! - `GET /widget/api/media/{id}`: a file in the visitor's conversation
//!   (theirs, or an agent's to them); anyone else is told it does not exist.
//!   The widget fetches it with its token header and shows it from a `blob:`
//!   URL, so the token never goes into a URL.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::api::{Visitor, answer, known_customer, over_rate, store_sent, visitor_request};
use super::view;
use crate::console::media_api::{DRAIN_BYTES, drain, media_error};
use crate::http_error::{ApiError, Code, checked_client_id};
use crate::media::outgoing;
use crate::media::rules::MediaKind;
use crate::state::AppState;
use crate::store::messages::Channel;

/// Inside the `/widget/api` scope.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/media", web::post().to(upload))
        .route("/media/{id}", web::get().to(open));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    client_id: String,
    /// The file's name (kept and shown for files).
    name: Option<String>,
}

async fn upload(
    state: web::Data<AppState>,
    req: HttpRequest,
    mut body: web::Payload,
) -> HttpResponse {
    let (visitor, cors) = match visitor_request(&state, &req) {
        Ok(v) => v,
        Err(refused) => return *refused,
    };
    let declared_length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let result = receive(&state, &req, &visitor, declared_length, &mut body).await;
    let refused = !matches!(&result, Ok(r) if r.status().is_success());
    if refused && declared_length.is_none_or(|n| n <= DRAIN_BYTES) {
        drain(&mut body).await;
    }
    answer(result, cors.as_deref())
}

async fn receive(
    state: &AppState,
    req: &HttpRequest,
    visitor: &Visitor,
    declared_length: Option<u64>,
    body: &mut web::Payload,
) -> Result<HttpResponse, ApiError> {
    let q = web::Query::<UploadQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::new(Code::BadRequest, e.to_string()))?
        .into_inner();
    let client_id = checked_client_id(&q.client_id)?.to_owned();
    let key = format!("w:{}:{client_id}", visitor.id);
    // A retry of a stored upload: answered as stored, the body not read.
    if let Some(m) = state.store.message_by_key(&visitor.site.id, &key).await? {
        return Ok(HttpResponse::Ok().json(json!({
            "message": view::message(&m, state.widget.names()).await,
            "existing": true,
        })));
    }
    if let Some(refused) = over_rate(state, visitor, &client_id).await? {
        return Ok(refused);
    }
    let name = q.name.as_deref().and_then(outgoing::clean_name);
    let declared_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let (object, sendable) = state
        .media
        .store
        .receive_upload(
            Channel::Web,
            name.as_deref(),
            declared_type,
            declared_length,
            body,
        )
        .await
        .map_err(media_error)?;
    tracing::info!(
        site = %visitor.site.id,
        media_object_id = object.id,
        kind = sendable.kind.as_str(),
        size = object.size,
        "visitor upload stored"
    );
    // A file's name is its text (shown, searched); media have none.
    let text = match sendable.kind {
        MediaKind::File => Some(name.unwrap_or_else(|| {
            format!(
                "file.{}",
                crate::media::rules::extension(&object.content_type)
            )
        })),
        _ => None,
    };
    let (stored, conversation) = store_sent(
        state,
        req,
        visitor,
        &client_id,
        sendable.kind.as_str(),
        text.as_deref(),
        Some(object.id),
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({
        "message": view::message(&stored, state.widget.names()).await,
        "conversation": conversation,
    })))
}

async fn open(state: web::Data<AppState>, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    let (visitor, cors) = match visitor_request(&state, &req) {
        Ok(v) => v,
        Err(refused) => return *refused,
    };
    let result = async {
        let not_found = || ApiError::new(Code::NotFound, "no such media");
        let id: i64 = id.parse().map_err(|_| not_found())?;
        let customer = known_customer(&state, &visitor).await?;
        if !state
            .store
            .media_seen_by_visitor(id, customer, &visitor.site.id, &visitor.id)
            .await?
        {
            return Err(not_found());
        }
        crate::media::route::stream(&state, id).await
    }
    .await;
    answer(result, cors.as_deref())
}
