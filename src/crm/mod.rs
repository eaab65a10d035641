//! The CRM sync API, `/api/crm/v1/` (see `docs/crm.md` and the OpenAPI
//! file served at `/api/crm/v1/openapi.json`).
//!
//! - `POST /api/crm/v1/{kind}` with `{"rows": [...]}`: groups, regions,
//!   agents, agent-events, bindings, shifts, customers, vehicles. Answers
//!   what was applied, unchanged, stale (older than what is stored) and
//!   which rows were rejected and why.
//! - `GET /api/crm/v1/events?after=N&limit=M`: what Kefu decided that the
//!   CRM must learn, oldest first, with a cursor (also delivered by webhook,
//!   see [`webhook`]).
//!
//! Authentication is separate from console logins: an integration's key
//! from `KEFU_CRM_KEYS`, either as `Authorization: Bearer KEY` or as an
//! HMAC-SHA256 signature of `"{timestamp}\n{body}"` (for a `GET`, the
//! query string in place of the body) with the key
//! (`X-Kefu-Key: NAME`, `X-Kefu-Timestamp: UNIX SECONDS`,
//! `X-Kefu-Signature: HEX`). A signed call older or newer than five minutes,
//! or one whose signature was seen already, is refused.

pub mod apply;
pub mod import;
pub mod rows;
pub mod webhook;

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::CrmSettings;
use crate::http_error::{ApiError, Code};
use crate::state::AppState;
use apply::Sync;
use rows::Kind;

/// How far a signed call's timestamp may be from now.
pub const MAX_SKEW_SECS: i64 = 300;
/// Most events one `GET /events` answers.
const MAX_EVENTS: u64 = 1000;

/// Signatures seen within the last [`MAX_SKEW_SECS`] (twice, for both
/// sides of the clock): a replay is refused.
pub type Replays = moka::future::Cache<String, ()>;

pub fn replay_cache() -> Replays {
    moka::future::Cache::builder()
        .max_capacity(1_000_000)
        .time_to_live(Duration::from_secs(2 * MAX_SKEW_SECS as u64 + 60))
        .build()
}

static OPENAPI: &str = include_str!("openapi.json");

pub fn routes(cfg: &mut web::ServiceConfig, body_limit: usize) {
    cfg.route(
        "/api/crm/v1/openapi.json",
        web::get().to(|| async {
            HttpResponse::Ok()
                .content_type("application/json")
                .body(OPENAPI)
        }),
    )
    .route("/api/crm/v1/events", web::get().to(events))
    .service(
        web::resource("/api/crm/v1/{kind}")
            .app_data(web::PayloadConfig::new(body_limit))
            .route(web::post().to(batch)),
    );
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    rows: Vec<serde_json::Value>,
}

async fn batch(
    state: web::Data<AppState>,
    req: HttpRequest,
    kind: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&state, &req, &body).await?;
    let Some(kind) = Kind::from_path(&kind) else {
        return Err(ApiError::new(
            Code::NotFound,
            format!("no such kind of rows: {kind:?}"),
        ));
    };
    let batch: Batch = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            Code::BadRequest,
            format!("the body is not {{\"rows\": [...]}}: {e}"),
        )
    })?;
    let max = state.settings.crm.max_rows;
    if batch.rows.len() > max {
        return Err(ApiError::new(
            Code::PayloadTooLarge,
            format!("at most {max} rows a call, got {}", batch.rows.len()),
        ));
    }
    let report = Sync::live(&state)
        .apply(kind, batch.rows)
        .await
        .map_err(ApiError::internal)?;
    if report.applied > 0 {
        state.crm_webhook.wake();
    }
    tracing::info!(
        key = %caller,
        kind = ?kind,
        received = report.received,
        applied = report.applied,
        unchanged = report.unchanged,
        stale = report.stale,
        rejected = report.rejected.len(),
        "CRM batch"
    );
    Ok(HttpResponse::Ok().json(report))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    #[serde(default)]
    after: i64,
    limit: Option<u64>,
}

async fn events(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    // A GET signs its query string (there is no body); reads are not
    // refused as replays.
    authenticate(&state, &req, req.query_string().as_bytes()).await?;
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_EVENTS);
    let rows = state
        .store
        .crm_events_after(q.after, limit)
        .await
        .map_err(ApiError::internal)?;
    let next = rows.last().map_or(q.after, |r| r.id);
    let events: Vec<serde_json::Value> = rows.iter().map(webhook::event_json).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "events": events, "next": next })))
}

/// The key's name, or why the call is refused.
async fn authenticate(
    state: &AppState,
    req: &HttpRequest,
    body: &[u8],
) -> Result<String, ApiError> {
    let now = chrono::Utc::now().timestamp();
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let auth = Auth {
        bearer: header("authorization").and_then(|v| v.strip_prefix("Bearer ")),
        key: header("x-kefu-key"),
        timestamp: header("x-kefu-timestamp"),
        signature: header("x-kefu-signature"),
    };
    let verdict = check(&state.settings.crm, &auth, body, now);
    let name = match verdict {
        Ok(Verified::Key(name)) => name,
        Ok(Verified::Signed { name, .. }) if req.method() == actix_web::http::Method::GET => name,
        Ok(Verified::Signed { name, signature }) => {
            let fresh = state
                .crm_replays
                .entry(signature)
                .or_insert(())
                .await
                .is_fresh();
            if !fresh {
                return Err(ApiError::new(
                    Code::Unauthorized,
                    "this signed call was seen already (replay)",
                ));
            }
            name
        }
        Err(e) => {
            tracing::info!(reason = %e.message, "CRM call refused");
            return Err(e);
        }
    };
    Ok(name)
}

/// What a caller presented.
#[derive(Debug, Default, Clone, Copy)]
pub struct Auth<'a> {
    pub bearer: Option<&'a str>,
    pub key: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verified {
    Key(String),
    /// Signed: the signature, to refuse its replay.
    Signed {
        name: String,
        signature: String,
    },
}

/// Checks a caller's key or signature (everything but replays).
pub fn check(
    settings: &CrmSettings,
    auth: &Auth<'_>,
    body: &[u8],
    now: i64,
) -> Result<Verified, ApiError> {
    let refuse = |m: &str| ApiError::new(Code::Unauthorized, m);
    if settings.keys.is_empty() {
        return Err(ApiError::new(
            Code::Unavailable,
            "the CRM API has no keys: set KEFU_CRM_KEYS (name:secret,…) and restart",
        ));
    }
    if let Some(sig) = auth.signature {
        let name = auth
            .key
            .ok_or_else(|| refuse("a signed call names its key in X-Kefu-Key"))?;
        let key = settings
            .keys
            .iter()
            .find(|k| k.name == name)
            .ok_or_else(|| refuse("unknown key"))?;
        let ts: i64 = auth
            .timestamp
            .and_then(|t| t.trim().parse().ok())
            .ok_or_else(|| refuse("a signed call carries X-Kefu-Timestamp (Unix seconds)"))?;
        if (now - ts).abs() > MAX_SKEW_SECS {
            return Err(refuse(
                "the timestamp is more than five minutes away from now",
            ));
        }
        let expected = hex(&sign(key.secret.expose().as_bytes(), ts, body));
        if !same(
            expected.as_bytes(),
            sig.trim().to_ascii_lowercase().as_bytes(),
        ) {
            return Err(refuse("bad signature"));
        }
        return Ok(Verified::Signed {
            name: key.name.clone(),
            signature: expected,
        });
    }
    let Some(bearer) = auth.bearer else {
        return Err(refuse(
            "authenticate with Authorization: Bearer KEY or an X-Kefu-Signature",
        ));
    };
    if settings.require_signature {
        return Err(refuse(
            "this server takes signed calls only (X-Kefu-Signature)",
        ));
    }
    settings
        .keys
        .iter()
        .find(|k| same(k.secret.expose().as_bytes(), bearer.trim().as_bytes()))
        .map(|k| Verified::Key(k.name.clone()))
        .ok_or_else(|| refuse("unknown key"))
}

/// HMAC-SHA256 of `"{timestamp}\n{body}"` with `key`.
pub fn sign(key: &[u8], timestamp: i64, body: &[u8]) -> [u8; 32] {
    let mut msg = Vec::with_capacity(body.len() + 24);
    msg.extend_from_slice(timestamp.to_string().as_bytes());
    msg.push(b'\n');
    msg.extend_from_slice(body);
    hmac_sha256(key, &msg)
}

/// RFC 2104 over SHA-256.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner);
    outer.finalize().into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Constant-time equality (for equal lengths).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CrmKey, Secret};

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn settings() -> CrmSettings {
        CrmSettings {
            keys: vec![CrmKey {
                name: "crm".into(),
                secret: Secret::new(SECRET),
            }],
            ..CrmSettings::default()
        }
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_signed_call_needs_a_known_key_a_fresh_timestamp_and_the_right_mac() {
        let s = settings();
        let body = br#"{"rows":[]}"#;
        let now = 1_800_000_000;
        let sig = hex(&sign(SECRET.as_bytes(), now, body));
        let ts = now.to_string();
        let auth = Auth {
            key: Some("crm"),
            timestamp: Some(&ts),
            signature: Some(&sig),
            ..Auth::default()
        };
        assert!(matches!(
            check(&s, &auth, body, now + 10),
            Ok(Verified::Signed { .. })
        ));
        let msg = |r: Result<Verified, ApiError>| r.unwrap_err().message;
        assert!(msg(check(&s, &auth, body, now + 301)).contains("five minutes"));
        assert!(msg(check(&s, &auth, br#"{"rows":[1]}"#, now)).contains("bad signature"));
        let other = Auth {
            key: Some("nope"),
            ..auth
        };
        assert!(msg(check(&s, &other, body, now)).contains("unknown key"));
    }

    #[test]
    fn a_bare_key_works_unless_signatures_are_required() {
        let mut s = settings();
        let auth = Auth {
            bearer: Some(SECRET),
            ..Auth::default()
        };
        assert_eq!(
            check(&s, &auth, b"", 0).unwrap(),
            Verified::Key("crm".into())
        );
        let wrong = Auth {
            bearer: Some("0123456789abcdef0123456789abcdeX"),
            ..Auth::default()
        };
        assert!(check(&s, &wrong, b"", 0).is_err());
        s.require_signature = true;
        assert!(
            check(&s, &auth, b"", 0)
                .unwrap_err()
                .message
                .contains("signed calls only")
        );
        s.keys.clear();
        assert_eq!(
            check(&s, &auth, b"", 0).unwrap_err().code,
            Code::Unavailable
        );
    }
}
