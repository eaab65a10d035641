//! `kefu ip-region` against a small database written by the test.

use std::net::Ipv4Addr;
use std::process::Command;

use kefu::routing::xdb::XdbWriter;

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

/// Ranges must come in address order.
fn test_xdb(dir: &std::path::Path) -> std::path::PathBuf {
    let bytes = XdbWriter::new()
        .range(
            Ipv4Addr::new(1, 0, 0, 0),
            Ipv4Addr::new(1, 0, 0, 255),
            "中国|0|上海|上海市|电信",
        )
        .range(
            Ipv4Addr::new(8, 8, 8, 0),
            Ipv4Addr::new(8, 8, 8, 255),
            "美国|0|0|0|Level3",
        )
        .range(
            Ipv4Addr::new(114, 114, 0, 0),
            Ipv4Addr::new(114, 114, 255, 255),
            "中国|0|江苏省|南京市|0",
        )
        .build()
        .unwrap();
    let path = dir.join("test.xdb");
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn ip_region_prints_the_region_and_routing_key_of_each_address() {
    let dir = tempfile::tempdir().unwrap();
    let xdb = test_xdb(dir.path());
    let out = kefu()
        .args([
            "ip-region",
            "114.114.114.114",
            "1.0.0.255",
            "8.8.8.8",
            "9.9.9.9",
            "::1",
        ])
        .arg("--xdb")
        .arg(&xdb)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "114.114.114.114  中国|0|江苏省|南京市|0  routing key: 南京",
            "1.0.0.255  中国|0|上海|上海市|电信  routing key: 上海",
            "8.8.8.8  美国|0|0|0|Level3  routing key: none",
            "9.9.9.9  (not in the data)",
            "::1  (IPv6 is not covered: the data is IPv4 only)",
        ]
    );
}

#[test]
fn ip_region_says_how_to_fetch_a_missing_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = kefu()
        .args(["ip-region", "1.2.3.4", "--xdb"])
        .arg(dir.path().join("absent.xdb"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("absent.xdb"), "{err}");
    assert!(err.contains("kefu fetch-ip2region"), "{err}");
}

#[test]
fn ip_region_refuses_a_damaged_database_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let xdb = test_xdb(dir.path());
    let mut bytes = std::fs::read(&xdb).unwrap();
    bytes.truncate(bytes.len() - 3);
    std::fs::write(&xdb, bytes).unwrap();
    let out = kefu()
        .args(["ip-region", "1.0.0.1", "--xdb"])
        .arg(&xdb)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad segment index bounds"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn help_lists_the_ip2region_commands() {
    let out = kefu().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("fetch-ip2region") && text.contains("ip-region"),
        "{text}"
    );
}

#[tokio::test]
async fn the_server_loads_the_configured_database_once_at_start() {
    use kefu::routing::xdb::XdbWriter;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("regions.xdb");
    let bytes = XdbWriter::new()
        .range(
            "58.32.0.0".parse().unwrap(),
            "58.47.255.255".parse().unwrap(),
            "中国|0|上海|上海市|电信",
        )
        .build()
        .unwrap();
    std::fs::write(&path, bytes).unwrap();
    let p = path.clone();
    let app = crate::helpers::spawn_app_with(move |s| s.routing.ip2region_path = p).await;
    assert!(app.state.regions.is_loaded());
    let region = app
        .state
        .regions
        .resolve("58.33.1.1".parse().unwrap())
        .unwrap();
    assert_eq!(region.routing_key(), Some("上海"));
    assert!(
        app.state
            .regions
            .resolve("8.8.8.8".parse().unwrap())
            .is_none()
    );

    let missing = crate::helpers::spawn_app_with(|s| {
        s.routing.ip2region_path = "/nonexistent/ip2region.xdb".into()
    })
    .await;
    assert!(
        !missing.state.regions.is_loaded(),
        "absent file: the server starts and routes without regions"
    );
}
