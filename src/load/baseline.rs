//! The baseline: a trivial actix-web server that answers `success` to
//! `POST /wechat/{account}` after reading the body, and nothing else. Its
//! numbers are the HTTP floor of this machine to compare Kefu against.

use std::net::{SocketAddr, TcpListener};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

use super::BaselineArgs;

/// Largest body the baseline reads (WeChat callbacks are a few KiB).
const BODY_LIMIT: usize = 64 * 1024;
/// How long the parent waits for the child's `listening` line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);
/// The first line the server prints, followed by the bound address.
const LISTENING: &str = "listening ";

/// Reads the body (so the work matches a real handler's) and acknowledges.
async fn ack(_body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("success")
}

/// `kefu load baseline-server`: binds, prints `listening ADDR` as the first
/// stdout line, then serves until killed or interrupted.
pub async fn serve(args: BaselineArgs) -> ExitCode {
    match serve_inner(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve_inner(args: BaselineArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let workers = args.workers.unwrap_or_else(default_workers).max(1);
    let server = HttpServer::new(|| {
        App::new()
            .app_data(web::PayloadConfig::new(BODY_LIMIT))
            .route("/wechat/{account}", web::post().to(ack))
    })
    .workers(workers)
    .listen(listener)
    .context("cannot start the HTTP server")?
    .run();
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{LISTENING}{addr}").context("cannot write to stdout")?;
        out.flush().context("cannot write to stdout")?;
    }
    server.await.context("the HTTP server failed")
}

/// Kefu's default worker count: one per available core.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Extracts the address from a `listening 127.0.0.1:PORT` line.
pub fn parse_listening(line: &str) -> Option<SocketAddr> {
    line.trim().strip_prefix(LISTENING)?.parse().ok()
}

/// A baseline server running as a child process of this one.
pub struct BaselineChild {
    child: Child,
    /// Kept open so the child never writes into a closed pipe.
    _stdout: BufReader<ChildStdout>,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl BaselineChild {
    /// Starts `<this executable> load baseline-server --listen 127.0.0.1:0`
    /// and waits for its `listening` line.
    pub async fn spawn(workers: Option<usize>) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find the kefu executable")?;
        let mut cmd = Command::new(&exe);
        cmd.args(["load", "baseline-server", "--listen", "127.0.0.1:0"]);
        if let Some(w) = workers {
            cmd.arg("--workers").arg(w.to_string());
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {} load baseline-server", exe.display()))?;
        let Some(stdout) = child.stdout.take() else {
            bail!("the baseline server's stdout is not piped");
        };
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        let read = tokio::time::timeout(STARTUP_TIMEOUT, stdout.read_line(&mut line))
            .await
            .context("the baseline server did not report its address within 15 s")?
            .context("cannot read the baseline server's output")?;
        if read == 0 {
            let status = child.wait().await.ok();
            bail!("the baseline server exited before listening ({status:?})");
        }
        let Some(addr) = parse_listening(&line) else {
            bail!("unexpected first line from the baseline server: {line:?}");
        };
        Ok(Self {
            child,
            _stdout: stdout,
            addr,
        })
    }

    /// Kills the child and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.child
            .kill()
            .await
            .context("cannot stop the baseline server")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_line() {
        assert_eq!(
            parse_listening("listening 127.0.0.1:34567\n"),
            Some("127.0.0.1:34567".parse().unwrap())
        );
        assert_eq!(parse_listening("Kefu 0.1.0 listening on 1.2.3.4:5"), None);
        assert_eq!(parse_listening("listening nowhere"), None);
    }

    #[actix_web::test]
    async fn baseline_answers_success_to_callbacks_only() {
        use actix_web::test;
        let app = test::init_service(
            App::new()
                .app_data(web::PayloadConfig::new(BODY_LIMIT))
                .route("/wechat/{account}", web::post().to(ack)),
        )
        .await;
        let req = test::TestRequest::post()
            .uri("/wechat/demo-oa?signature=x")
            .set_payload("<xml/>")
            .to_request();
        let resp = test::call_service(&app, req).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(test::read_body(resp).await, "success");

        let get = test::TestRequest::get().uri("/wechat/demo-oa").to_request();
        assert!(
            test::call_service(&app, get)
                .await
                .status()
                .is_client_error()
        );
        let other = test::TestRequest::post().uri("/wecom/x").to_request();
        assert_eq!(test::call_service(&app, other).await.status(), 404);
        let big = test::TestRequest::post()
            .uri("/wechat/demo-oa")
            .set_payload(vec![b'x'; BODY_LIMIT + 1])
            .to_request();
        assert_eq!(test::call_service(&app, big).await.status(), 413);
    }
}
