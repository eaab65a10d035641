//! The `kefu` binary, as a person runs it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::repo_config_dir;

fn kefu() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kefu"));
    c.env_remove("RUST_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("KEFU_") {
            c.env_remove(k);
        }
    }
    c
}

#[test]
fn help_lists_the_subcommands() {
    let out = kefu().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in ["serve", "migrate", "check-config"] {
        assert!(text.contains(sub), "{text}");
    }
}

#[test]
fn check_config_accepts_the_shipped_example() {
    let out = kefu()
        .arg("--config")
        .arg(repo_config_dir())
        .arg("check-config")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("/wechat/demo-oa") && text.contains("/wecom/demo-kf"),
        "{text}"
    );
}

#[test]
fn check_config_names_the_file_the_key_and_the_fix_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo_config_dir().join("kefu.toml"),
        dir.path().join("kefu.toml"),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("accounts")).unwrap();
    std::fs::write(
        dir.path().join("accounts/shop.toml"),
        "kind = \"official_account\"\napp_id = \"wx1\"\nsecret = \"s\"\nencoding_aes_key = \"tooshort\"\nflavour = \"x\"\n",
    )
    .unwrap();
    let out = kefu()
        .arg("-c")
        .arg(dir.path())
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "shop.toml: `encoding_aes_key`: must be exactly 43 characters of base64 (got 8)"
        ),
        "{err}"
    );
    assert!(err.contains("shop.toml: `token`: missing"), "{err}");
    assert!(err.contains("shop.toml: `flavour`: unknown key"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn environment_overrides_are_validated_too() {
    let out = kefu()
        .arg("-c")
        .arg(repo_config_dir())
        .arg("check-config")
        .env("KEFU__DATABASE__URL", "mysql://nope")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`database.url`"), "{err}");
}

#[test]
fn routing_settings_out_of_range_are_named_with_their_bounds() {
    let out = kefu()
        .arg("-c")
        .arg(repo_config_dir())
        .arg("check-config")
        .env("KEFU__ROUTING__QUEUE_SWEEP_SECS", "0")
        .env("KEFU__ROUTING__PRESENCE_GRACE_SECS", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`routing.queue_sweep_secs`: must be between 1 and 3600"),
        "{err}"
    );
    assert!(
        err.contains("`routing.presence_grace_secs`: must be between 5 and 86400"),
        "{err}"
    );
}

#[test]
fn migrate_creates_the_database_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/sub/kefu.db?mode=rwc", dir.path().display());
    for _ in 0..2 {
        let out = kefu()
            .arg("-c")
            .arg(repo_config_dir())
            .arg("migrate")
            .env("KEFU__DATABASE__URL", &url)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("m20261123_000001_initial"), "{text}");
    }
    assert!(dir.path().join("sub/kefu.db").is_file());
}

#[test]
fn serve_with_an_unreachable_database_exits_with_a_clear_error() {
    let out = kefu()
        .arg("-c")
        .arg(repo_config_dir())
        .arg("serve")
        .env(
            "KEFU__DATABASE__URL",
            "postgres://kefu:secretpw@127.0.0.1:1/kefu",
        )
        .env("KEFU__DATABASE__CONNECT_TIMEOUT_SECS", "1")
        .env("KEFU__SERVER__PORT", "0")
        .env("KEFU__METRICS__PORT", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("could not start") && err.contains("cannot connect to the database"),
        "{err}"
    );
    assert!(
        !err.contains("secretpw"),
        "the password is never printed: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn serve_starts_prints_where_it_listens_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = kefu()
        .arg("-c")
        .arg(repo_config_dir())
        .arg("serve")
        .env(
            "KEFU__DATABASE__URL",
            format!("sqlite://{}/kefu.db?mode=rwc", dir.path().display()),
        )
        .env("KEFU__MEDIA__DIR", dir.path().join("media"))
        .env("KEFU__SERVER__PORT", "0")
        .env("KEFU__METRICS__PORT", "0")
        .env("KEFU__LOG__LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut banner = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.contains("/setup/");
        banner.push(line);
        if done {
            break;
        }
    }
    let text = banner.join("\n");
    for want in [
        "listening on 127.0.0.1:",
        "console:",
        "/wechat/demo-oa",
        "/wecom/demo-kf",
        "/healthz",
        "/metrics",
        "/setup/",
    ] {
        assert!(text.contains(want), "banner lacks {want}: {text}");
    }
    let port: u16 = text
        .split("listening on 127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .expect("port in banner");
    let health = std::net::TcpStream::connect(("127.0.0.1", port));
    assert!(health.is_ok(), "the printed port accepts connections");

    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "kefu did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "graceful stop exits 0, got {status:?}");
}
