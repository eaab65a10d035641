//! Web chat sites (the widget, issue 9): one TOML file each under `sites/`.
//!
//! ```toml
//! id = "demo-web"                         # stored as the messages' account id
//! name = "示例官网"
//! public_key = "pk_demo_web_…"            # in the <script> tag: public, 16–64 of [A-Za-z0-9_-]
//! allowed_origins = ["https://www.example.com"]   # pages that may embed the widget
//! login_secret = "…"                      # optional: HMAC key of the site's logged-in users' tokens
//! leave_message_required = ["phone", "message"]   # the leave-a-message form's required fields
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ConfigError, ConfigProblem, Secret};
use crate::ids::AccountId;

/// One configured website or app.
#[derive(Debug, Clone)]
pub struct Site {
    pub id: AccountId,
    pub name: String,
    pub public_key: String,
    /// Origins (`scheme://host[:port]`) allowed to embed the widget and
    /// call its API from the browser.
    pub allowed_origins: Vec<String>,
    /// Verifies the site's signed tokens for its logged-in users; without
    /// it every visitor is a guest.
    pub login_secret: Option<Secret>,
    /// Fields the leave-a-message form requires (of `name`, `phone`,
    /// `message`).
    pub leave_message_required: Vec<String>,
    pub file: PathBuf,
}

/// The leave-a-message form's fields.
pub const LEAVE_MESSAGE_FIELDS: [&str; 3] = ["name", "phone", "message"];

impl Site {
    /// Whether a browser page of `origin` may use the widget.
    pub fn allows_origin(&self, origin: &str) -> bool {
        let origin = origin.trim_end_matches('/');
        self.allowed_origins.iter().any(|o| o == origin)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteFile {
    id: Option<String>,
    name: String,
    public_key: String,
    #[serde(default)]
    allowed_origins: Vec<String>,
    login_secret: Option<String>,
    leave_message_required: Option<Vec<String>>,
}

/// Reads every `*.toml` of `dir` (a missing folder: no sites), sorted by name.
pub fn load_dir(dir: &Path) -> Result<Vec<Site>, ConfigError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut problems = Vec::new();
    let mut sites: Vec<Site> = Vec::new();
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                problems.push(problem(&file, None, format!("cannot read: {e}")));
                continue;
            }
        };
        match parse(&file, &text) {
            Ok(site) => {
                if sites.iter().any(|s| s.id == site.id) {
                    problems.push(problem(
                        &file,
                        Some("id"),
                        format!("{:?} is used by another site file", site.id.as_str()),
                    ));
                }
                if sites.iter().any(|s| s.public_key == site.public_key) {
                    problems.push(problem(
                        &file,
                        Some("public_key"),
                        "is used by another site file".into(),
                    ));
                }
                sites.push(site);
            }
            Err(mut more) => problems.append(&mut more),
        }
    }
    if problems.is_empty() {
        Ok(sites)
    } else {
        Err(ConfigError(problems))
    }
}

fn problem(file: &Path, key: Option<&str>, message: String) -> ConfigProblem {
    ConfigProblem {
        file: file.to_owned(),
        key: key.map(Into::into),
        message,
    }
}

/// Parses and validates one site file, reporting every problem in it.
pub fn parse(file: &Path, text: &str) -> Result<Site, Vec<ConfigProblem>> {
    let raw: SiteFile = toml::from_str(text)
        .map_err(|e| vec![problem(file, None, format!("not valid: {}", e.message()))])?;
    let mut problems = Vec::new();
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let id = match AccountId::parse(raw.id.as_deref().unwrap_or(&stem)) {
        Ok(id) => Some(id),
        Err(e) => {
            problems.push(problem(file, Some("id"), e.to_string()));
            None
        }
    };
    if raw.name.trim().is_empty() || raw.name.chars().count() > 64 {
        problems.push(problem(
            file,
            Some("name"),
            "must be 1–64 characters".into(),
        ));
    }
    let key_ok = (16..=64).contains(&raw.public_key.len())
        && raw
            .public_key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !key_ok {
        problems.push(problem(
            file,
            Some("public_key"),
            "must be 16–64 characters of A–Z, a–z, 0–9, _ and -".into(),
        ));
    }
    let mut seen = HashSet::new();
    let mut origins = Vec::new();
    for o in &raw.allowed_origins {
        let o = o.trim_end_matches('/');
        match url::Url::parse(o) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.path() == "/"
                    && u.query().is_none()
                    && u.origin().ascii_serialization() == o =>
            {
                if seen.insert(o.to_owned()) {
                    origins.push(o.to_owned());
                }
            }
            _ => problems.push(problem(
                file,
                Some("allowed_origins"),
                format!("{o:?} is not an origin like \"https://www.example.com\" (scheme, host, port; no path)"),
            )),
        }
    }
    let login_secret = match raw.login_secret {
        Some(s) if s.len() < 32 => {
            problems.push(problem(
                file,
                Some("login_secret"),
                "must be at least 32 characters (random)".into(),
            ));
            None
        }
        Some(s) => Some(Secret::new(s)),
        None => None,
    };
    let required = raw
        .leave_message_required
        .unwrap_or_else(|| vec!["phone".into(), "message".into()]);
    for f in &required {
        if !LEAVE_MESSAGE_FIELDS.contains(&f.as_str()) {
            problems.push(problem(
                file,
                Some("leave_message_required"),
                format!("{f:?} is not a field; use \"name\", \"phone\" or \"message\""),
            ));
        }
    }
    match (id, problems.is_empty()) {
        (Some(id), true) => Ok(Site {
            id,
            name: raw.name,
            public_key: raw.public_key,
            allowed_origins: origins,
            login_secret,
            leave_message_required: required,
            file: file.to_owned(),
        }),
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(text: &str) -> Result<Site, Vec<ConfigProblem>> {
        parse(Path::new("sites/demo-web.toml"), text)
    }

    #[test]
    fn a_site_file_is_read() {
        let s = site(
            r#"name = "官网"
public_key = "pk_demo_web_0123456789"
allowed_origins = ["https://www.example.com/", "http://127.0.0.1:8080"]
"#,
        )
        .unwrap();
        assert_eq!(s.id.as_str(), "demo-web");
        assert!(s.allows_origin("https://www.example.com"));
        assert!(s.allows_origin("http://127.0.0.1:8080"));
        assert!(!s.allows_origin("https://evil.example.com"));
        assert!(!s.allows_origin("null"));
        assert!(s.login_secret.is_none());
    }

    #[test]
    fn every_problem_is_named() {
        let e = site(
            r#"name = ""
public_key = "short"
allowed_origins = ["https://www.example.com/path", "ftp://x"]
login_secret = "tooshort"
"#,
        )
        .unwrap_err();
        let keys: Vec<_> = e.iter().filter_map(|p| p.key.clone()).collect();
        assert_eq!(
            keys,
            [
                "name",
                "public_key",
                "allowed_origins",
                "allowed_origins",
                "login_secret"
            ]
        );
        assert!(site("name = \"x\"\npublic_key = \"pk_0123456789abcdef\"\nfoo = 1").is_err());
    }
}
