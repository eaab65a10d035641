//! WeChat accounts: one TOML file each under `accounts/`.
//!
//! ```toml
//! id = "demo-oa"                  # used in URLs: /wechat/demo-oa (default: file name)
//! kind = "official_account"       # or "wecom_kf"
//! name = "示例公众号"
//! app_id = "wx…"                  # official_account; wecom_kf uses corp_id
//! secret = "…"
//! token = "…"
//! encoding_aes_key = "…"          # 43 characters
//! message_mode = "safe"           # official_account: plaintext | compatible | safe
//! token_mode = "stable"           # official_account: stable | plain
//! welcome_message = "欢迎关注"      # official_account: passive reply to new followers
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ConfigError, ConfigProblem, Secret};
use crate::ids::AccountId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    OfficialAccount,
    WecomKf,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OfficialAccount => "official_account",
            Self::WecomKf => "wecom_kf",
        }
    }

    /// The path prefix of this kind's callback URL.
    pub fn callback_prefix(self) -> &'static str {
        match self {
            Self::OfficialAccount => "/wechat/",
            Self::WecomKf => "/wecom/",
        }
    }
}

/// The OA message encryption mode chosen in the MP console. Kefu accepts
/// what WeChat sends (it branches on `encrypt_type`), but replies in this mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MessageMode {
    Plaintext,
    Compatible,
    #[default]
    Safe,
}

/// How access tokens are obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TokenMode {
    /// `stable_token`: safe for several instances (default).
    #[default]
    Stable,
    /// `token`: every call rotates the token.
    Plain,
}

/// One configured WeChat account.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: AccountId,
    pub kind: AccountKind,
    pub name: String,
    /// The OA appid or the WeCom corpid: the `receiveid` of message crypto.
    pub app_id: String,
    pub secret: Secret,
    pub token: Secret,
    /// Absent only for a plaintext-mode Official Account.
    pub encoding_aes_key: Option<Secret>,
    pub message_mode: MessageMode,
    pub token_mode: TokenMode,
    /// Passive reply to a new follower (关注自动回复), if any.
    pub welcome_message: Option<String>,
    /// Asks WeChat for each new customer's unionid (OA `user/info`, WeCom
    /// `kf/customer/batchget`) and joins customers who share one. Only
    /// accounts bound to a WeChat Open Platform account get unionids.
    pub link_unionid: bool,
    /// The file it came from.
    pub file: PathBuf,
}

impl Account {
    /// The path of this account's callback URL, e.g. `/wechat/demo-oa`.
    pub fn callback_path(&self) -> String {
        format!("{}{}", self.kind.callback_prefix(), self.id)
    }
}

const COMMON_KEYS: &[&str] = &[
    "id",
    "kind",
    "name",
    "secret",
    "token",
    "encoding_aes_key",
    "link_unionid",
];
const OA_KEYS: &[&str] = &["app_id", "message_mode", "token_mode", "welcome_message"];
const WECOM_KEYS: &[&str] = &["corp_id"];

/// Reads every `*.toml` file of `dir`, sorted by name.
pub fn load_dir(dir: &Path) -> Result<Vec<Account>, ConfigError> {
    let mut problems = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            return Err(ConfigError(vec![ConfigProblem {
                file: dir.to_owned(),
                key: None,
                message: format!("cannot read the accounts folder: {e}"),
            }]));
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut accounts = Vec::new();
    let mut ids = HashSet::new();
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => match parse(&file, &text) {
                Ok(acc) => {
                    if !ids.insert(acc.id.clone()) {
                        problems.push(ConfigProblem {
                            file: file.clone(),
                            key: Some("id".into()),
                            message: format!(
                                "{:?} is used by another account file; ids must be unique",
                                acc.id.as_str()
                            ),
                        });
                    }
                    accounts.push(acc);
                }
                Err(mut more) => problems.append(&mut more),
            },
            Err(e) => problems.push(ConfigProblem {
                file,
                key: None,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    if problems.is_empty() {
        Ok(accounts)
    } else {
        Err(ConfigError(problems))
    }
}

/// Parses and validates one account file, reporting every problem in it.
pub fn parse(file: &Path, text: &str) -> Result<Account, Vec<ConfigProblem>> {
    let mut problems = Vec::new();
    let mut bad = |key: &str, message: String| {
        problems.push(ConfigProblem {
            file: file.to_owned(),
            key: Some(key.into()),
            message,
        })
    };
    let table: toml::Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            return Err(vec![ConfigProblem {
                file: file.to_owned(),
                key: None,
                message: format!("not valid TOML: {}", e.message()),
            }]);
        }
    };
    let str_of = |key: &str| -> Result<Option<String>, String> {
        match table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!("must be a string, not {}", other.type_str())),
        }
    };

    let kind = match str_of("kind") {
        Ok(Some(k)) if k == "official_account" => Some(AccountKind::OfficialAccount),
        Ok(Some(k)) if k == "wecom_kf" => Some(AccountKind::WecomKf),
        Ok(Some(k)) => {
            bad(
                "kind",
                format!("{k:?} is not a kind; use \"official_account\" or \"wecom_kf\""),
            );
            None
        }
        Ok(None) => {
            bad(
                "kind",
                "missing; add kind = \"official_account\" or kind = \"wecom_kf\"".into(),
            );
            None
        }
        Err(m) => {
            bad("kind", m);
            None
        }
    };

    for key in table.keys() {
        let known = COMMON_KEYS.contains(&key.as_str())
            || match kind {
                Some(AccountKind::OfficialAccount) => OA_KEYS.contains(&key.as_str()),
                Some(AccountKind::WecomKf) => WECOM_KEYS.contains(&key.as_str()),
                None => OA_KEYS.contains(&key.as_str()) || WECOM_KEYS.contains(&key.as_str()),
            };
        if !known {
            let allowed: Vec<&str> = COMMON_KEYS
                .iter()
                .chain(match kind {
                    Some(AccountKind::WecomKf) => WECOM_KEYS.iter(),
                    _ => OA_KEYS.iter(),
                })
                .copied()
                .collect();
            bad(
                key,
                format!("unknown key; expected one of: {}", allowed.join(", ")),
            );
        }
    }

    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_owned();
    let id = match str_of("id") {
        Ok(v) => {
            let raw = v.unwrap_or(stem);
            match AccountId::parse(&raw) {
                Ok(id) => Some(id),
                Err(e) => {
                    bad("id", format!("{raw:?}: {e}"));
                    None
                }
            }
        }
        Err(m) => {
            bad("id", m);
            None
        }
    };

    let mut required = |key: &str, hint: &str| -> Option<String> {
        match str_of(key) {
            Ok(Some(v)) if !v.trim().is_empty() => Some(v),
            Ok(_) => {
                bad(key, format!("missing; {hint}"));
                None
            }
            Err(m) => {
                bad(key, m);
                None
            }
        }
    };

    let id_key = match kind {
        Some(AccountKind::WecomKf) => "corp_id",
        _ => "app_id",
    };
    let app_id = required(
        id_key,
        if id_key == "corp_id" {
            "copy the 企业ID (corpid) from the WeCom admin console"
        } else {
            "copy the AppID from the MP console (开发 → 基本配置)"
        },
    );
    let secret = required("secret", "copy the AppSecret / Secret from the console");
    let token = required(
        "token",
        "the Token you entered in the console's server configuration",
    );

    let message_mode = match (kind, str_of("message_mode")) {
        (_, Ok(None)) => MessageMode::Safe,
        (_, Ok(Some(m))) => match m.as_str() {
            "plaintext" => MessageMode::Plaintext,
            "compatible" => MessageMode::Compatible,
            "safe" => MessageMode::Safe,
            other => {
                bad(
                    "message_mode",
                    format!("{other:?}: use plaintext, compatible or safe"),
                );
                MessageMode::Safe
            }
        },
        (_, Err(m)) => {
            bad("message_mode", m);
            MessageMode::Safe
        }
    };
    let token_mode = match str_of("token_mode") {
        Ok(None) => TokenMode::Stable,
        Ok(Some(m)) if m == "stable" => TokenMode::Stable,
        Ok(Some(m)) if m == "plain" => TokenMode::Plain,
        Ok(Some(m)) => {
            bad("token_mode", format!("{m:?}: use stable or plain"));
            TokenMode::Stable
        }
        Err(m) => {
            bad("token_mode", m);
            TokenMode::Stable
        }
    };

    if let Some(t) = &token
        && !(3..=32).contains(&t.len())
    {
        bad(
            "token",
            format!(
                "must be 3 to 32 letters or digits (got {} characters)",
                t.chars().count()
            ),
        );
    } else if let Some(t) = &token
        && !t.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        bad("token", "must contain only letters and digits".into());
    }
    if let Some(a) = &app_id
        && !a
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        bad(
            id_key,
            format!("{a:?} must contain only letters and digits"),
        );
    }

    let key_needed = kind == Some(AccountKind::WecomKf) || message_mode != MessageMode::Plaintext;
    let encoding_aes_key = match str_of("encoding_aes_key") {
        Ok(Some(k)) => match check_encoding_aes_key(&k) {
            Ok(()) => Some(Secret::new(k)),
            Err(m) => {
                bad("encoding_aes_key", m);
                None
            }
        },
        Ok(None) if key_needed => {
            bad(
                "encoding_aes_key",
                "missing; copy the 43-character EncodingAESKey from the console (needed in \
                 compatible and safe mode, and always for WeCom)"
                    .into(),
            );
            None
        }
        Ok(None) => None,
        Err(m) => {
            bad("encoding_aes_key", m);
            None
        }
    };

    let welcome_message = match str_of("welcome_message") {
        Ok(w) => w.filter(|w| !w.trim().is_empty()),
        Err(m) => {
            bad("welcome_message", m);
            None
        }
    };
    if let Some(w) = &welcome_message
        && w.len() > 2000
    {
        bad(
            "welcome_message",
            format!(
                "is {} bytes; WeChat drops passive replies over about 2,000 bytes",
                w.len()
            ),
        );
    }

    let link_unionid = match table.get("link_unionid") {
        None => false,
        Some(toml::Value::Boolean(b)) => *b,
        Some(other) => {
            bad(
                "link_unionid",
                format!("must be true or false, not {}", other.type_str()),
            );
            false
        }
    };

    let name = match str_of("name") {
        Ok(n) => n.unwrap_or_else(|| id.as_ref().map(|i| i.to_string()).unwrap_or_default()),
        Err(m) => {
            bad("name", m);
            String::new()
        }
    };

    match (id, kind, app_id, secret, token) {
        (Some(id), Some(kind), Some(app_id), Some(secret), Some(token)) if problems.is_empty() => {
            Ok(Account {
                id,
                kind,
                name,
                app_id,
                secret: Secret::new(secret),
                token: Secret::new(token),
                encoding_aes_key,
                message_mode,
                token_mode,
                welcome_message,
                link_unionid,
                file: file.to_owned(),
            })
        }
        _ => Err(problems),
    }
}

/// An EncodingAESKey is 43 characters of base64 that decode to 32 bytes.
fn check_encoding_aes_key(k: &str) -> Result<(), String> {
    let n = k.chars().count();
    if n != 43 {
        return Err(format!(
            "must be exactly 43 characters of base64 (got {n}); copy it again from the console"
        ));
    }
    if let Some(c) = k
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '+' || *c == '/'))
    {
        return Err(format!("must be base64 (A-Z a-z 0-9 + /), found {c:?}"));
    }
    Ok(())
}
