use std::path::Path;

use super::*;

const KEFU_TOML: &str = r#"
[server]
host = "127.0.0.1"
port = 8080

[database]
url = "sqlite://data/kefu.db?mode=rwc"
"#;

const OA: &str = r#"
id = "demo-oa"
kind = "official_account"
app_id = "wx2c2769f8efd9abc2"
secret = "not-a-real-secret"
token = "spamtest"
encoding_aes_key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
"#;

fn dir_with(kefu: &str, accounts: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kefu.toml"), kefu).unwrap();
    std::fs::create_dir(dir.path().join("accounts")).unwrap();
    for (name, text) in accounts {
        std::fs::write(dir.path().join("accounts").join(name), text).unwrap();
    }
    dir
}

fn load(dir: &Path, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    Settings::load_with_env(dir, &EnvSnapshot::from_pairs(env.iter().copied()))
}

fn problems(dir: &Path) -> Vec<String> {
    load(dir, &[])
        .unwrap_err()
        .0
        .iter()
        .map(|p| p.to_string())
        .collect()
}

#[test]
fn the_shipped_example_configuration_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("wechat-config");
    let s = load(&dir, &[]).expect("example config is valid");
    let kinds: Vec<_> = s.accounts.iter().map(|a| a.kind).collect();
    assert!(kinds.contains(&AccountKind::OfficialAccount));
    assert!(kinds.contains(&AccountKind::WecomKf));
    assert!(s.database.url.expose().starts_with("sqlite:"));
}

#[test]
fn environment_overrides_the_file() {
    let dir = dir_with(KEFU_TOML, &[("oa.toml", OA)]);
    let s = load(
        dir.path(),
        &[
            ("KEFU__SERVER__PORT", "9999"),
            ("KEFU__DATABASE__URL", "postgres://kefu:pw@127.0.0.1/kefu"),
            ("KEFU__REDIS__URL", "redis://127.0.0.1:6379"),
            ("KEFU__LOG__FORMAT", "json"),
            ("KEFU_WECHAT_API_BASE", "http://127.0.0.1:1234"),
            ("KEFU_WECOM_API_BASE", "http://127.0.0.1:5678"),
            ("UNRELATED", "x"),
        ],
    )
    .unwrap();
    assert_eq!(s.server.port, 9999);
    assert_eq!(s.server.host, "127.0.0.1");
    assert_eq!(s.database.url.expose(), "postgres://kefu:pw@127.0.0.1/kefu");
    assert!(s.redis.enabled());
    assert_eq!(s.log.format, LogFormat::Json);
    assert_eq!(s.wechat.api_base, "http://127.0.0.1:1234");
    assert_eq!(s.wecom.api_base, "http://127.0.0.1:5678");
}

#[test]
fn defaults_apply_without_the_environment() {
    let dir = dir_with(KEFU_TOML, &[("oa.toml", OA)]);
    let s = load(dir.path(), &[]).unwrap();
    assert_eq!(s.server.port, 8080);
    assert!(!s.redis.enabled());
    assert_eq!(s.limits.callback_body_bytes, 64 * 1024);
    assert_eq!(s.wechat.api_base, "https://api.weixin.qq.com");
    assert_eq!(s.wecom.api_base, "https://qyapi.weixin.qq.com");
    assert_eq!(s.accounts.len(), 1);
    assert_eq!(s.accounts[0].callback_path(), "/wechat/demo-oa");
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let dir = dir_with(
        "[database]\nurl = \"postgres://kefu:topsecretpw@db/kefu\"\n[redis]\nurl = \"redis://:redispw@r\"\n",
        &[("oa.toml", OA)],
    );
    let s = load(dir.path(), &[]).unwrap();
    let dbg = format!("{s:?}");
    for secret in [
        "topsecretpw",
        "redispw",
        "not-a-real-secret",
        "spamtest",
        "abcdefghijklmnop",
    ] {
        assert!(!dbg.contains(secret), "{secret} leaked into {dbg}");
    }
}

#[test]
fn an_unknown_key_in_kefu_toml_is_named() {
    let dir = dir_with("[server]\nhots = \"x\"\n", &[("oa.toml", OA)]);
    let p = problems(dir.path());
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].contains("kefu.toml")
            && p[0].contains("`server.hots`")
            && p[0].contains("unknown key"),
        "{p:?}"
    );
}

#[test]
fn a_bad_value_from_the_environment_says_so() {
    let dir = dir_with(KEFU_TOML, &[("oa.toml", OA)]);
    let p = load(dir.path(), &[("KEFU__SERVER__PORT", "eighty")])
        .unwrap_err()
        .0;
    assert_eq!(p[0].key.as_deref(), Some("server.port"));
    assert!(p[0].message.contains("environment"), "{p:?}");
}

#[test]
fn a_short_encoding_aes_key_is_named_with_its_file() {
    let dir = dir_with(
        KEFU_TOML,
        &[("oa.toml", &OA.replace("ABCDEFG\"", "ABCDEF\""))],
    );
    let p = problems(dir.path());
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("oa.toml"), "{p:?}");
    assert!(
        p[0].contains("`encoding_aes_key`")
            && p[0].contains("43 characters")
            && p[0].contains("got 42"),
        "{p:?}"
    );
}

#[test]
fn a_non_base64_key_a_missing_token_and_an_unknown_key_are_all_reported() {
    let text = OA
        .replace("token = \"spamtest\"\n", "")
        .replace("ABCDEFG\"", "ABCDEF!\"")
        + "colour = \"blue\"\n";
    let dir = dir_with(KEFU_TOML, &[("oa.toml", &text)]);
    let p = problems(dir.path());
    assert_eq!(p.len(), 3, "{p:?}");
    assert!(
        p.iter()
            .any(|m| m.contains("`token`") && m.contains("missing")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|m| m.contains("`encoding_aes_key`") && m.contains("base64")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|m| m.contains("`colour`") && m.contains("unknown key")),
        "{p:?}"
    );
}

#[test]
fn wecom_accounts_use_corp_id_and_always_need_a_key() {
    let kf = "kind = \"wecom_kf\"\ncorp_id = \"ww1436e0e65a779aee\"\nsecret = \"s\"\ntoken = \"abc123\"\nmessage_mode = \"safe\"\n";
    let dir = dir_with(KEFU_TOML, &[("kf.toml", kf)]);
    let p = problems(dir.path());
    assert!(
        p.iter()
            .any(|m| m.contains("`encoding_aes_key`") && m.contains("missing")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|m| m.contains("`message_mode`") && m.contains("unknown key")),
        "{p:?}"
    );
}

#[test]
fn plaintext_oa_needs_no_key_and_id_defaults_to_file_name() {
    let text = "kind = \"official_account\"\napp_id = \"wx1\"\nsecret = \"s\"\ntoken = \"tok\"\nmessage_mode = \"plaintext\"\n";
    let dir = dir_with(KEFU_TOML, &[("plain-oa.toml", text)]);
    let s = load(dir.path(), &[]).unwrap();
    assert_eq!(s.accounts[0].id.as_str(), "plain-oa");
    assert!(s.accounts[0].encoding_aes_key.is_none());
}

#[test]
fn duplicate_ids_and_bad_kinds_are_refused() {
    let dir = dir_with(
        KEFU_TOML,
        &[
            ("a.toml", OA),
            ("b.toml", OA),
            ("c.toml", "kind = \"weibo\"\n"),
        ],
    );
    let p = problems(dir.path());
    assert!(
        p.iter()
            .any(|m| m.contains("b.toml") && m.contains("unique")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|m| m.contains("c.toml") && m.contains("`kind`")),
        "{p:?}"
    );
}

#[test]
fn a_missing_kefu_toml_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let p = problems(dir.path());
    assert!(
        p[0].contains("kefu.toml") && p[0].contains("not found"),
        "{p:?}"
    );
}

#[test]
fn invalid_toml_is_reported_with_the_file() {
    let dir = dir_with(KEFU_TOML, &[("oa.toml", "kind = \n")]);
    let p = problems(dir.path());
    assert!(
        p[0].contains("oa.toml") && p[0].contains("not valid TOML"),
        "{p:?}"
    );
}
