//! `GET /media/{id}`: a stored file, for the console users who may see a
//! conversation or customer it was sent or received in (admins: any).
//! Anyone else is told it does not exist. Signed out, pages
//! redirect to the sign-in page (see `CurrentUser`). Pictures, sound and
//! video are served inline, everything else as an attachment; the type is
//! the recorded one and browsers are told not to guess another.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use tokio::io::AsyncReadExt;

use super::MediaError;
use super::rules;
use crate::auth::CurrentUser;
use crate::http_error::{ApiError, Code};
use crate::state::AppState;

/// Bytes read from disk per chunk.
const CHUNK: usize = 64 * 1024;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/media/{id}", web::get().to(serve));
}

async fn serve(
    user: CurrentUser,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::new(Code::NotFound, "no such media");
    let id: i64 = id.parse().map_err(|_| not_found())?;
    if !may_see(&state, &user, id).await? {
        return Err(not_found());
    }
    tracing::debug!(media_id = id, user = %user.login, "media served");
    stream(&state, id).await
}

/// The stored file `id` as an answer (its recorded type, inline or as an
/// attachment, never sniffed or run), for a caller already allowed to see it.
pub async fn stream(state: &AppState, id: i64) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::new(Code::NotFound, "no such media");
    let (row, path) = state.media.store.open(id).await.map_err(|e| match e {
        MediaError::NotFound => not_found(),
        e => ApiError::internal(e),
    })?;
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(media_id = id, path = %path.display(), error = %e, "stored media file missing");
            return Err(not_found());
        }
    };
    let disposition = if rules::inline(&row.content_type) {
        "inline".to_owned()
    } else {
        format!(
            "attachment; filename=\"media-{id}.{}\"",
            rules::extension(&row.content_type)
        )
    };
    let body = futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; CHUNK];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(web::Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    Ok(HttpResponse::Ok()
        .content_type(row.content_type.as_str())
        .insert_header((header::CONTENT_DISPOSITION, disposition))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "private, max-age=86400"))
        .insert_header((header::ETAG, format!("\"{}\"", row.sha256)))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; sandbox",
        ))
        .no_chunking(row.size.max(0) as u64)
        .streaming(body))
}

/// Whether `user` may see a conversation or customer the object is used in.
async fn may_see(state: &AppState, user: &CurrentUser, id: i64) -> Result<bool, ApiError> {
    if user.role.at_least(crate::auth::Role::Admin)
        || state
            .store
            .media_sent_or_served_by(id, user.agent_id)
            .await?
    {
        return Ok(true);
    }
    for u in state.store.media_uses(id).await? {
        if let Some(c) = u.conversation
            && crate::console::conversation_api::conversation_for(state, user, c)
                .await
                .is_ok()
        {
            return Ok(true);
        }
        if let Some(c) = u.customer
            && crate::console::customer_api::customer_for(state, user, c)
                .await
                .is_ok()
        {
            return Ok(true);
        }
    }
    Ok(false)
}
