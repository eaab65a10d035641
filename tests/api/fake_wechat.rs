//! Fake WeChat (api.weixin.qq.com) / WeCom (qyapi.weixin.qq.com) API server for the
//! integration tests. One real HTTP server on 127.0.0.1 stands in for both hosts; every
//! path lives under `/cgi-bin/...` exactly like the real APIs (PROTOCOL.md §1.6 and §3).
//!
//! Behaviour in short:
//! - `token` rotates (the previous token of that appid is invalid at once), `stable_token`
//!   is stable until `force_refresh`, `gettoken` (WeCom) never invalidates earlier tokens.
//! - every other endpoint needs a valid `?access_token=` (41001 missing, 40001 unknown or
//!   rotated, 42001 after [`FakeWechat::expire_all_tokens`]).
//! - every request is recorded before it is answered; injected faults for the endpoint are
//!   applied next (before any token check), see [`Fault`].
#![allow(dead_code)]

mod handlers;
mod multipart;
mod self_tests;

use std::collections::{HashMap, VecDeque};
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
use tokio::sync::Notify;

/// WeCom kf error answered by `kf/sync_msg` (and `kf/send_msg`, `kf/service_state/*`)
/// when `open_kfid` is missing or empty.
pub const ERR_INVALID_OPEN_KFID: i64 = 95000;

/// Largest request body the fake accepts (uploads up to the 10 MB media limits + slack).
const MAX_BODY: usize = 32 * 1024 * 1024;

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Path after `/cgi-bin/`, e.g. `"message/custom/send"`; the full path (with its
    /// leading `/`) for requests outside `/cgi-bin/`.
    pub endpoint: String,
    pub method: String,
    pub query: HashMap<String, String>,
    pub body: Vec<u8>,
    /// The body parsed as JSON, when it is JSON.
    pub json: Option<Value>,
    pub at: Instant,
}

/// A fault the fake applies to a call of one endpoint instead of (or before) its answer.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Sleep, then answer normally.
    Delay(Duration),
    /// Answer this HTTP status with an empty body.
    Status(u16),
    /// Answer 200 `{"errcode":c,"errmsg":"fake fault"}`.
    ErrCode(i64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TokenStatus {
    Valid,
    /// Replaced by a newer token (`token` call or `stable_token` force_refresh): 40001.
    Rotated,
    /// Made invalid by `expire_all_tokens`: 42001.
    Expired,
}

struct StoredMedia {
    content_type: String,
    filename: String,
    bytes: Vec<u8>,
}

struct State {
    requests: Vec<Recorded>,
    queued_faults: HashMap<String, VecDeque<Fault>>,
    always_faults: HashMap<String, Fault>,
    /// Every token ever issued, in issue order, with its status.
    tokens: Vec<(String, TokenStatus)>,
    /// appid -> latest token of `token`.
    latest_token: HashMap<String, String>,
    /// appid -> latest token of `stable_token`.
    latest_stable: HashMap<String, String>,
    kf_messages: HashMap<String, Vec<Value>>,
    kf_page_size: usize,
    /// (open_kfid, external_userid) -> (service_state, servicer_userid); default (1, "").
    kf_service_state: HashMap<(String, String), (i64, String)>,
    /// openid or external_userid -> (unionid, nickname) for `user/info` and
    /// `kf/customer/batchget`; unknown users get no unionid.
    users: HashMap<String, (Option<String>, Option<String>)>,
    media: HashMap<String, StoredMedia>,
    /// Plain files served at paths outside `/cgi-bin/` (e.g. an image's `PicUrl`).
    files: HashMap<String, StoredMedia>,
    uploaded: Vec<(String, String, Vec<u8>)>,
    seq: u64,
    template_msgid: i64,
}

impl State {
    fn new() -> State {
        State {
            requests: Vec::new(),
            queued_faults: HashMap::new(),
            always_faults: HashMap::new(),
            tokens: Vec::new(),
            latest_token: HashMap::new(),
            latest_stable: HashMap::new(),
            kf_messages: HashMap::new(),
            kf_page_size: 1000,
            kf_service_state: HashMap::new(),
            users: HashMap::new(),
            media: HashMap::new(),
            files: HashMap::new(),
            uploaded: Vec::new(),
            seq: 0,
            template_msgid: 2_000_000_000,
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn next_fault(&mut self, endpoint: &str) -> Option<Fault> {
        if let Some(queue) = self.queued_faults.get_mut(endpoint)
            && let Some(fault) = queue.pop_front()
        {
            return Some(fault);
        }
        self.always_faults.get(endpoint).cloned()
    }

    fn token_status(&self, token: &str) -> Option<TokenStatus> {
        self.tokens
            .iter()
            .find(|(t, _)| t == token)
            .map(|(_, s)| *s)
    }

    fn set_token_status(&mut self, token: &str, status: TokenStatus) {
        if let Some(entry) = self.tokens.iter_mut().find(|(t, _)| t == token) {
            entry.1 = status;
        }
    }

    fn issue_token(&mut self, kind: &str) -> String {
        let seq = self.next_seq();
        let token = format!("FAKE_{kind}_{seq}_{}", uuid::Uuid::new_v4().simple());
        self.tokens.push((token.clone(), TokenStatus::Valid));
        token
    }

    /// Rotation: the previous token (if still valid) becomes `Rotated`.
    fn rotate(&mut self, which: Namespace, appid: &str) -> String {
        let (kind, map) = match which {
            Namespace::Token => ("TOKEN", &self.latest_token),
            Namespace::Stable => ("STABLE", &self.latest_stable),
        };
        if let Some(old) = map.get(appid).cloned()
            && self.token_status(&old) == Some(TokenStatus::Valid)
        {
            self.set_token_status(&old, TokenStatus::Rotated);
        }
        let token = self.issue_token(kind);
        let map = match which {
            Namespace::Token => &mut self.latest_token,
            Namespace::Stable => &mut self.latest_stable,
        };
        map.insert(appid.to_owned(), token.clone());
        token
    }
}

#[derive(Clone, Copy)]
enum Namespace {
    Token,
    Stable,
}

struct Shared {
    state: Mutex<State>,
    notify: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The fake server. Dropping it stops the server (best effort).
pub struct FakeWechat {
    /// `http://127.0.0.1:PORT` (no trailing slash, no `/cgi-bin`).
    pub base_url: String,
    shared: Arc<Shared>,
    handle: ServerHandle,
}

impl FakeWechat {
    /// Bind 127.0.0.1:0 and serve. Must be called inside a tokio runtime
    /// (e.g. `#[tokio::test]`).
    pub async fn start() -> FakeWechat {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new()),
            notify: Notify::new(),
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("fake_wechat: bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("fake_wechat: set_nonblocking");
        let port = listener
            .local_addr()
            .expect("fake_wechat: local_addr")
            .port();
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY))
                .default_service(web::to(serve))
        })
        .listen(listener)
        .expect("fake_wechat: listen")
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        FakeWechat {
            base_url: format!("http://127.0.0.1:{port}"),
            shared,
            handle,
        }
    }

    /// `base_url` + `/cgi-bin/` + `endpoint`.
    pub fn url(&self, endpoint: &str) -> String {
        format!(
            "{}/cgi-bin/{}",
            self.base_url,
            endpoint.trim_start_matches('/')
        )
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests.clone()
    }

    /// The requests to one endpoint (path after `/cgi-bin/`), in arrival order.
    pub fn requests_to(&self, endpoint: &str) -> Vec<Recorded> {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.endpoint == endpoint)
            .cloned()
            .collect()
    }

    pub fn count(&self, endpoint: &str) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.endpoint == endpoint)
            .count()
    }

    /// Forget the recorded requests (tokens, faults, messages and media stay).
    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// The next `times` calls to `endpoint` get this fault. Faults queue in order behind
    /// earlier injected ones; `Delay` then answers normally.
    pub fn inject(&self, endpoint: &str, fault: Fault, times: usize) {
        let mut st = self.shared.lock();
        let queue = st.queued_faults.entry(endpoint.to_owned()).or_default();
        queue.extend(std::iter::repeat_n(fault, times));
    }

    /// Every call to `endpoint` gets this fault (after any queued ones) until `clear_faults`.
    pub fn inject_always(&self, endpoint: &str, fault: Fault) {
        self.shared
            .lock()
            .always_faults
            .insert(endpoint.to_owned(), fault);
    }

    pub fn clear_faults(&self) {
        let mut st = self.shared.lock();
        st.queued_faults.clear();
        st.always_faults.clear();
    }

    /// The access tokens currently accepted, in issue order.
    pub fn valid_tokens(&self) -> Vec<String> {
        let st = self.shared.lock();
        st.tokens
            .iter()
            .filter(|(_, s)| *s == TokenStatus::Valid)
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// Simulate expiry: every currently valid token now answers 42001. New token calls
    /// issue fresh valid tokens (`stable_token` included).
    pub fn expire_all_tokens(&self) {
        let mut st = self.shared.lock();
        for (_, status) in st.tokens.iter_mut() {
            if *status == TokenStatus::Valid {
                *status = TokenStatus::Expired;
            }
        }
    }

    /// Append messages to the `kf/sync_msg` stream of `open_kfid`. Objects missing
    /// `open_kfid`, `msgid` or `send_time` get them filled in.
    pub fn add_kf_messages(&self, open_kfid: &str, msgs: Vec<Value>) {
        let mut st = self.shared.lock();
        let mut filled = Vec::with_capacity(msgs.len());
        for mut msg in msgs {
            if let Value::Object(map) = &mut msg {
                if !map.contains_key("open_kfid") {
                    map.insert("open_kfid".into(), json!(open_kfid));
                }
                if !map.contains_key("msgid") {
                    let seq = st.next_seq();
                    map.insert("msgid".into(), json!(format!("fake_kf_msg_{seq}")));
                }
                if !map.contains_key("send_time") {
                    map.insert("send_time".into(), json!(chrono::Utc::now().timestamp()));
                }
            }
            filled.push(msg);
        }
        st.kf_messages
            .entry(open_kfid.to_owned())
            .or_default()
            .extend(filled);
    }

    /// Page size cap of `kf/sync_msg` (default 1000, minimum 1).
    pub fn set_kf_page_size(&self, n: usize) {
        self.shared.lock().kf_page_size = n.max(1);
    }

    /// What `kf/service_state/get` answers for this session (default state 1, servicer "").
    /// `kf/service_state/trans` updates it too.
    pub fn set_kf_service_state(
        &self,
        open_kfid: &str,
        external_userid: &str,
        state: i64,
        servicer_userid: &str,
    ) {
        self.shared.lock().kf_service_state.insert(
            (open_kfid.to_owned(), external_userid.to_owned()),
            (state, servicer_userid.to_owned()),
        );
    }

    /// Make `media/get?media_id=` answer these bytes with this content type.
    /// What `user/info` (openid) and `kf/customer/batchget`
    /// (external_userid) answer for this user.
    pub fn set_user(&self, id: &str, unionid: Option<&str>, nickname: Option<&str>) {
        self.shared.lock().users.insert(
            id.to_owned(),
            (unionid.map(str::to_owned), nickname.map(str::to_owned)),
        );
    }

    pub fn put_media(&self, media_id: &str, content_type: &str, bytes: Vec<u8>) {
        self.shared.lock().media.insert(
            media_id.to_owned(),
            StoredMedia {
                content_type: content_type.to_owned(),
                filename: format!("{media_id}.bin"),
                bytes,
            },
        );
    }

    /// Serve `bytes` at `path` (outside `/cgi-bin/`, e.g. `/mmbiz/pic.jpg`) to any GET,
    /// without a token: a stand-in for an image's `PicUrl`. Returns the full URL.
    pub fn put_file(&self, path: &str, content_type: &str, bytes: Vec<u8>) -> String {
        let path = format!("/{}", path.trim_start_matches('/'));
        self.shared.lock().files.insert(
            path.clone(),
            StoredMedia {
                content_type: content_type.to_owned(),
                filename: path.rsplit('/').next().unwrap_or("file").to_owned(),
                bytes,
            },
        );
        format!("{}{path}", self.base_url)
    }

    /// Successful `media/upload` calls: (media_id, type query param, file bytes).
    pub fn uploaded_media(&self) -> Vec<(String, String, Vec<u8>)> {
        self.shared.lock().uploaded.clone()
    }

    /// Wait until at least `n` requests to `endpoint` were recorded and return all of them
    /// (possibly more than `n`). Event-driven; panics after `timeout`.
    pub async fn wait_for(&self, endpoint: &str, n: usize, timeout: Duration) -> Vec<Recorded> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let seen = self.requests_to(endpoint);
            if seen.len() >= n {
                return seen;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let seen = self.requests_to(endpoint);
                if seen.len() >= n {
                    return seen;
                }
                let all: Vec<String> = self
                    .requests()
                    .iter()
                    .map(|r| format!("{} {}", r.method, r.endpoint))
                    .collect();
                panic!(
                    "fake_wechat: timed out after {timeout:?} waiting for {n} request(s) to {endpoint:?}, saw {}; \
                     all requests: {all:?}",
                    seen.len()
                );
            }
        }
    }
}

impl Drop for FakeWechat {
    fn drop(&mut self) {
        // The stop command is sent synchronously; the returned future only awaits completion.
        drop(self.handle.stop(false));
    }
}

/// What a handler decided to answer.
enum Reply {
    Json(Value),
    Bytes {
        content_type: String,
        filename: String,
        bytes: Vec<u8>,
    },
}

fn err(code: i64, msg: &str) -> Reply {
    Reply::Json(json!({"errcode": code, "errmsg": msg}))
}

fn json_response(value: &Value) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json; encoding=utf-8")
        .body(value.to_string())
}

async fn serve(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let path = req.path();
    let endpoint = path
        .strip_prefix("/cgi-bin/")
        .map(str::to_owned)
        .unwrap_or_else(|| path.to_owned());
    let query = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .unwrap_or_default();
    let json = if body.is_empty() {
        None
    } else {
        serde_json::from_slice::<Value>(&body).ok()
    };
    let rec = Recorded {
        endpoint,
        method: req.method().as_str().to_owned(),
        query,
        body: body.to_vec(),
        json,
        at: Instant::now(),
    };
    let fault = {
        let mut st = shared.lock();
        st.requests.push(rec.clone());
        st.next_fault(&rec.endpoint)
    };
    shared.notify.notify_waiters();

    match fault {
        Some(Fault::ErrCode(code)) => {
            return json_response(&json!({"errcode": code, "errmsg": "fake fault"}));
        }
        Some(Fault::Status(status)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return HttpResponse::build(status).finish();
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        None => {}
    }

    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let reply = {
        let mut st = shared.lock();
        if rec.endpoint.starts_with('/') {
            st.files.get(&rec.endpoint).map(|f| Reply::Bytes {
                content_type: f.content_type.clone(),
                filename: f.filename.clone(),
                bytes: f.bytes.clone(),
            })
        } else {
            Some(handlers::dispatch(&mut st, &rec, &content_type))
        }
    };
    match reply {
        None => HttpResponse::NotFound().finish(),
        Some(Reply::Json(value)) => json_response(&value),
        Some(Reply::Bytes {
            content_type,
            filename,
            bytes,
        }) => HttpResponse::Ok()
            .content_type(content_type)
            .insert_header((
                "Content-disposition",
                format!("attachment; filename=\"{filename}\""),
            ))
            .body(bytes),
    }
}
