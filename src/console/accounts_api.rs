//! The configured WeChat accounts, read-only, admins only (see
//! `docs/admin.md`): `GET /api/admin/accounts`.
//!
//! What an admin needs to set up WeChat's console: each account's id,
//! kind, name, AppID or corpid, the callback URL to paste, the encryption
//! mode, whether unionids join customers, and whether the secrets are there.
//! Secrets themselves (AppSecret, Token, EncodingAESKey) never leave the
//! server: only `true`/`false` for each.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::conversation_api::json;
use crate::auth::{CurrentUser, Role};
use crate::config::{Account, AccountKind, MessageMode, TokenMode};
use crate::http_error::{ApiError, Code};
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/admin/accounts", web::get().to(list));
}

#[derive(Serialize)]
struct Overview {
    /// The base of every callback URL, without a trailing slash.
    public_url: String,
    /// `server.public_url` is set; otherwise `public_url` is the local
    /// address, which WeChat's servers cannot reach.
    public_url_configured: bool,
    accounts: Vec<AccountView>,
}

/// One account, without its secrets.
#[derive(Serialize)]
struct AccountView {
    id: String,
    /// `official_account` or `wecom_kf`.
    kind: &'static str,
    name: String,
    /// The Official Account's AppID.
    #[serde(skip_serializing_if = "Option::is_none")]
    app_id: Option<String>,
    /// The WeCom corp's corpid.
    #[serde(skip_serializing_if = "Option::is_none")]
    corp_id: Option<String>,
    /// WeCom: the customer-service accounts (open_kfid) messages came from
    /// so far; WeChat tells them with the first message of each.
    #[serde(skip_serializing_if = "Option::is_none")]
    open_kfids: Option<Vec<String>>,
    /// What to paste in WeChat's console as the server (callback) URL.
    callback_url: String,
    /// `plaintext`, `compatible` or `safe` (WeCom is always `safe`).
    encryption: &'static str,
    /// Official Accounts: `stable` or `plain` access tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    token_mode: Option<&'static str>,
    link_unionid: bool,
    /// Official Accounts: the passive reply to new followers.
    #[serde(skip_serializing_if = "Option::is_none")]
    welcome_message: Option<String>,
    /// Yes or no only: the values are never shown.
    secret_configured: bool,
    token_configured: bool,
    encoding_aes_key_configured: bool,
    /// The file under `accounts/` to edit (then restart).
    file: String,
}

fn encryption(a: &Account) -> &'static str {
    match (a.kind, a.message_mode) {
        (AccountKind::WecomKf, _) => "safe",
        (_, MessageMode::Plaintext) => "plaintext",
        (_, MessageMode::Compatible) => "compatible",
        (_, MessageMode::Safe) => "safe",
    }
}

fn view(a: &Account, base: &str, open_kfids: Option<Vec<String>>) -> AccountView {
    let oa = a.kind == AccountKind::OfficialAccount;
    AccountView {
        id: a.id.to_string(),
        kind: a.kind.as_str(),
        name: a.name.clone(),
        app_id: oa.then(|| a.app_id.clone()),
        corp_id: (!oa).then(|| a.app_id.clone()),
        open_kfids,
        callback_url: format!("{base}{}", a.callback_path()),
        encryption: encryption(a),
        token_mode: oa.then_some(match a.token_mode {
            TokenMode::Stable => "stable",
            TokenMode::Plain => "plain",
        }),
        link_unionid: a.link_unionid,
        welcome_message: a.welcome_message.clone(),
        secret_configured: !a.secret.expose().trim().is_empty(),
        token_configured: !a.token.expose().trim().is_empty(),
        encoding_aes_key_configured: a.encoding_aes_key.as_ref().is_some_and(|k| !k.is_empty()),
        file: a
            .file
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
    }
}

async fn list(
    state: web::Data<AppState>,
    user: CurrentUser,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    if !user.role.at_least(Role::Admin) {
        return Err(ApiError::new(Code::Forbidden, "for admins"));
    }
    let settings = &state.settings;
    let base = settings.public_url(req.app_config().local_addr().port());
    let mut accounts = Vec::with_capacity(settings.accounts.len());
    for a in &settings.accounts {
        let open_kfids = match a.kind {
            AccountKind::WecomKf => {
                let mut ids = state.store.kf_accounts(&a.id).await?;
                ids.sort();
                Some(ids)
            }
            AccountKind::OfficialAccount => None,
        };
        accounts.push(view(a, &base, open_kfids));
    }
    Ok(json(&Overview {
        public_url: base,
        public_url_configured: settings.server.public_url.is_some(),
        accounts,
    }))
}
