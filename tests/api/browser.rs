//! The workbench in a real browser: Debian's headless Chromium driven by
//! chromedriver over the W3C WebDriver protocol (a few HTTP calls, below).
//! An agent signs in, receives a customer's WeChat message sent through the
//! real callback, replies and sees it reach the fake WeChat API, has the
//! socket cut and sees what was said meanwhile, transfers one conversation
//! and closes another. Customer text is shown as text: `<script>` and
//! `<img onerror>` run nothing.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (`.ci/run`
//! installs them); without them the test fails and says so.
//! A supervisor watches the board, looks into a waiting customer's
//! conversation and takes it over.
//! A supervisor searches the history: their groups' messages, words marked,
//! a hit's place in the customer's history.
//! An admin creates a user, a city group and a shared quick reply, and
//! sees the accounts' callback URLs.
//! A customer on the company's website (a page of another origin that
//! embeds the widget's loader) chats with the robot's page, asks for a
//! person, and exchanges messages with the agent whose console is open in
//! a second browser.
//! `KEFU_SCREENSHOTS=1` also writes `docs/screenshots/workbench.png`,
//! `board.png`, `search.png`, `admin.png` and `widget.png`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use kefu::auth::Role;
use kefu::routing::AgentStatus;
use serde_json::{Value, json};

use crate::desk::{changed, staff};
use crate::helpers::{TestApp, spawn_app_with};
use crate::login::browser::AGENT_PW;
use crate::wechat_client::{Mode, text_xml_now};

const WAIT: Duration = Duration::from_secs(15);
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Browser {
    driver: Child,
    http: reqwest::Client,
    base: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    async fn start() -> (Browser, String) {
        for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(
                std::path::Path::new(bin).exists(),
                "{bin} is missing: apt-get install chromium chromium-driver (.ci/run does)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let b = Browser {
            driver,
            http: reqwest::Client::new(),
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = tokio::time::Instant::now() + WAIT;
        while b
            .http
            .get(format!("{}/status", b.base))
            .send()
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver answers"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap().keep();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,860", "--lang=zh-CN", format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let r: Value = b
            .http
            .post(format!("{}/session", b.base))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("a browser session: {r}"))
            .to_owned();
        (b, session)
    }
}

/// One browser session.
struct Page {
    b: Browser,
    session: String,
}

impl Page {
    async fn open() -> Page {
        let (b, session) = Browser::start().await;
        Page { b, session }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.b.base, self.session);
        let mut rb = self.b.http.request(method, url);
        if let Some(body) = body {
            rb = rb.json(&body);
        }
        let v: Value = rb.send().await.unwrap().json().await.unwrap();
        assert!(v["value"].get("error").is_none(), "{path}: {v}");
        v["value"].clone()
    }

    /// Signs in through the login form, as a person does.
    async fn sign_in(&self, app: &TestApp, login: &str, password: &str) {
        self.goto(&format!("{}/login", app.address)).await;
        self.type_in("#login", login).await;
        self.type_in("#password", password).await;
        self.click("button[type=submit]").await;
        self.until("signed in", "return location.pathname === '/';")
            .await;
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("{css}: {v}"))
            .to_owned()
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn type_in(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    async fn js(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Waits until `script` returns true.
    async fn until(&self, what: &str, script: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if self.js(script).await == json!(true) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "in time: {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn screenshot(&self, name: &str) {
        if std::env::var_os("KEFU_SCREENSHOTS").is_none() {
            return;
        }
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

async fn say(app: &TestApp, from: &str, id: i64, text: &str) {
    let (status, _) = app.oa_post(Mode::Safe, &text_xml_now(from, id, text)).await;
    assert_eq!(status, 200);
}

fn has_text(css: &str, text: &str) -> String {
    format!(
        "return [...document.querySelectorAll({css:?})].some(e => e.textContent.includes({text:?}));"
    )
}

#[tokio::test]
async fn an_agent_works_wechat_customers_in_the_browser() {
    let app = spawn_app_with(|s| {
        s.routing.queue_sweep_secs = 3600;
        s.routing.reconcile_secs = 3600;
    })
    .await;
    let alice = staff(&app, "alice", Role::Agent, AgentStatus::Idle).await;
    let bob = staff(&app, "bob", Role::Agent, AgentStatus::Offline).await;
    let page = Page::open().await;

    // Sign in as a person does.
    page.sign_in(&app, "alice", AGENT_PW).await;
    // In Chinese, the default for this company's agents.
    page.goto(&format!("{}/lang/zh?next=/workbench", app.address))
        .await;
    page.until(
        "the workbench",
        "return location.pathname === '/workbench';",
    )
    .await;
    assert_eq!(
        page.js("return document.documentElement.lang;").await,
        json!("zh-CN")
    );
    page.until(
        "the socket is open",
        "return document.getElementById('conn').className === 'conn ok';",
    )
    .await;

    // A customer asks for a person through the real callback.
    let mut rx = app.state.bus.subscribe();
    say(&app, "oWang", 1, "转人工").await;
    let first = changed(&mut rx, |c| c.state == "assigned").await;
    assert_eq!(first.agent, Some(alice));
    app.state
        .store
        .create_quick_reply(None, "问候", "{客户}您好，我是 {客服}")
        .await
        .unwrap();
    // What the CRM knows of them, for the customer panel.
    kefu::store::crm::upsert_vehicle(
        app.state.store.writer(),
        &kefu::store::crm::VehicleRow {
            crm_id: "t-1".into(),
            customer: first.customer,
            plate: Some("沪A·12345".into()),
            model: Some("大众 帕萨特".into()),
            order_no: None,
            payment_status: "已打款".into(),
            payment_updated_at: None,
            sale_status: "已售出".into(),
            sale_updated_at: None,
            details: None,
        },
    )
    .await
    .unwrap();
    page.until(
        "the conversation is listed",
        "return document.querySelectorAll('#convs li.conv').length === 1;",
    )
    .await;
    page.click("#convs li.conv").await;
    page.until("its messages", &has_text("#messages .msg.in", "转人工"))
        .await;
    page.until(
        "the customer panel",
        &has_text("#panel .trade", "沪A·12345"),
    )
    .await;
    // A shared quick reply, filled in for this customer, goes into the composer.
    page.until(
        "the quick replies",
        "return document.getElementById('quick').options.length === 2;",
    )
    .await;
    let filled = page
        .js("const s = document.getElementById('quick'); \
             s.value = s.options[1].value; s.dispatchEvent(new Event('change')); \
             const v = document.getElementById('text').value; \
             document.getElementById('text').value = ''; return v;")
        .await;
    assert_eq!(filled, json!("客户您好，我是 alice 名字"));
    page.click("#emoji").await;
    page.click("#emoji-grid button").await;
    let typed = page
        .js("const v = document.getElementById('text').value; document.getElementById('text').value = ''; return v;")
        .await;
    assert_eq!(typed, json!("😊"), "an emoji goes into the composer");
    page.click("#emoji").await;
    page.until(
        "the history across channels",
        &has_text("#panel #history .hmsg", "转人工"),
    )
    .await;

    // Hostile text stays text.
    say(&app, "oWang", 2, "<img src=x onerror=\"window.__pwned=1\">").await;
    say(
        &app,
        "oWang",
        3,
        "<script>window.__pwned=2</script>我的车卖了吗",
    )
    .await;
    page.until(
        "the hostile text shown as text",
        &has_text("#messages .msg.in", "我的车卖了吗"),
    )
    .await;
    assert_eq!(
        page.js("return window.__pwned === undefined;").await,
        json!(true)
    );
    assert_eq!(
        page.js("return document.querySelectorAll('#messages img, #messages script').length;")
            .await,
        json!(0)
    );
    assert!(
        page.js(&has_text("#messages .msg.in", "<img src=x onerror"))
            .await
            == json!(true),
        "shown literally"
    );

    // A reply reaches WeChat and shows as sent.
    page.type_in("#text", "您好，您的车已售出，款项今天到账")
        .await;
    page.click("#send").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !app
        .fake
        .requests_to("message/custom/send")
        .iter()
        .any(|r| String::from_utf8_lossy(&r.body).contains("款项今天到账"))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reply reached WeChat"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    page.until(
        "shown as sent",
        &has_text("#messages .msg.out .status", "已发送"),
    )
    .await;
    // An internal note: shown in the thread, never sent to WeChat.
    page.click("#note-mode").await;
    page.type_in("#text", "备注：客户周五前要款").await;
    page.click("#send").await;
    page.until(
        "the note shown",
        &has_text("#messages .msg.note", "客户周五前要款"),
    )
    .await;
    page.click("#note-mode").await;
    page.screenshot("workbench.png").await;

    assert!(
        !app.fake
            .requests_to("message/custom/send")
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains("周五前要款")),
        "a note is never sent"
    );
    // A picture dropped on the conversation is uploaded, shown and sent;
    // a file the Official Account cannot send is refused in words.
    let drop = |bytes: &str, name: &str, ty: &str| {
        format!(
            "const dt = new DataTransfer(); \
             dt.items.add(new File([new Uint8Array([{bytes}])], '{name}', {{type: '{ty}'}})); \
             document.getElementById('chat').dispatchEvent(new DragEvent('drop', {{dataTransfer: dt, bubbles: true, cancelable: true}})); \
             return true;"
        )
    };
    page.js(&drop(
        "137,80,78,71,13,10,26,10,0,0,0,13,73,72,68,82,0,0,0,1,0,0,0,1,8,6,0,0,0,31,21,196,137",
        "car.png",
        "image/png",
    ))
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !app
        .fake
        .requests_to("message/custom/send")
        .iter()
        .any(|r| r.json.as_ref().is_some_and(|j| j["msgtype"] == "image"))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the picture reached WeChat"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    page.until(
        "the picture shown from the media store",
        "return document.querySelector('#messages .msg.out img[src^=\"/media/\"]') !== null;",
    )
    .await;
    page.js(&drop(
        "37,80,68,70,45,49,46,55,10",
        "报价单.pdf",
        "application/pdf",
    ))
    .await;
    page.until("the refusal", &has_text("#banner", "不能发送文件"))
        .await;

    // The socket is cut; the customer writes meanwhile; the tab catches up.
    page.js("window.kefuWorkbench.state.backoff = 2000; window.kefuWorkbench.cut(); return true;")
        .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while app.state.hub.counts().1 > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the socket closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = app.state.hub.seq_of(alice);
    say(&app, "oWang", 4, "断线时发的消息").await;
    while app.state.hub.seq_of(alice) == before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "filed while the tab was away"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    page.until(
        "what was missed",
        &has_text("#messages .msg.in", "断线时发的消息"),
    )
    .await;
    page.until(
        "reconnected",
        "return document.getElementById('conn').className === 'conn ok';",
    )
    .await;

    // A second customer; the first is transferred to bob, the second closed.
    say(&app, "oLi", 5, "人工").await;
    changed(&mut rx, |c| {
        c.state == "assigned" && c.conversation != first.conversation
    })
    .await;
    page.until(
        "two conversations",
        "return document.querySelectorAll('#convs li.conv').length === 2;",
    )
    .await;
    page.type_in("#transfer-target", &bob.0.to_string()).await;
    page.type_in("#transfer-note", "客户问过户，bob 熟悉").await;
    page.click("#transfer").await;
    let moved = changed(&mut rx, |c| {
        c.conversation == first.conversation && c.agent == Some(bob)
    })
    .await;
    assert!(moved.reason.contains("过户"), "{moved:?}");
    page.until(
        "the transferred one left the list",
        "return document.querySelectorAll('#convs li.conv').length === 1;",
    )
    .await;
    page.click("#convs li.conv").await;
    page.until(
        "the second conversation",
        &has_text("#messages .msg.in", "人工"),
    )
    .await;
    page.click("#close").await;
    let closed = changed(&mut rx, |c| c.state == "closed").await;
    assert_ne!(closed.conversation, first.conversation);
    page.until(
        "an empty list",
        "return document.querySelectorAll('#convs li.conv').length === 0;",
    )
    .await;

    // The status switch is always there, and routing follows it.
    assert_eq!(
        page.js("return document.getElementById('status').value;")
            .await,
        json!("idle")
    );
    page.click("#status option[value=break]").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while app
        .state
        .router
        .agent(alice, chrono::Utc::now())
        .unwrap()
        .status
        != AgentStatus::Break
    {
        assert!(tokio::time::Instant::now() < deadline, "on break");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_supervisor_watches_the_board_and_takes_a_customer_over_in_the_browser() {
    let w = crate::board::world().await;
    let app = &w.app;
    let page = Page::open().await;
    page.sign_in(app, "sue", AGENT_PW).await;
    page.until(
        "the board link",
        "return !!document.querySelector('a[href=\"/board\"]');",
    )
    .await;
    page.goto(&format!("{}/lang/zh?next=/board", app.address))
        .await;
    page.until("the board", "return location.pathname === '/board';")
        .await;
    page.until("the group", &has_text("#groups .group", "上海"))
        .await;
    page.until(
        "alice busy with one customer",
        &has_text("#groups .agent", "1/"),
    )
    .await;
    let row = format!("#unanswered tr[data-conversation='{}']", w.waiting.0);
    page.until(
        "the customer waiting for a reply",
        &format!("return !!document.querySelector({row:?});"),
    )
    .await;
    assert_eq!(
        page.js(&has_text("#groups .group", "北京")).await,
        json!(false),
        "another group"
    );
    page.click(&format!("{row} .view")).await;
    page.until(
        "the live view",
        &has_text("#live-messages .msg.in", "在吗？"),
    )
    .await;
    page.screenshot("board.png").await;
    page.click(&format!("{row} .take")).await;
    page.until("taken over", &has_text("#banner", "已接管"))
        .await;
    let c = app.state.store.conversation(w.waiting).await.unwrap();
    assert_eq!(c.agent_id, Some(w.sue.0));
}

#[tokio::test]
async fn an_admin_creates_a_user_and_a_group_in_the_browser() {
    let app = spawn_app_with(|_| {}).await;
    crate::login::browser::create_admin(&app).await;
    let page = Page::open().await;
    page.goto(&format!("{}/login?next=/admin", app.address))
        .await;
    page.type_in("#login", "ada").await;
    page.type_in("#password", crate::login::browser::ADMIN_PW)
        .await;
    page.click("button[type=submit]").await;
    page.until("the admin page", "return location.pathname === '/admin';")
        .await;
    page.until(
        "the group form",
        "return !!document.querySelector('#groups input[name=new-group]');",
    )
    .await;
    page.type_in("#groups input[name=new-group]", "上海").await;
    page.click("#groups .add-group").await;
    page.until(
        "the group listed",
        "return document.querySelectorAll('#groups .row[data-group]').length === 1;",
    )
    .await;
    page.type_in("#new-user input[name=login]", "lily").await;
    page.type_in("#new-user input[name=name]", "李丽<b>").await;
    page.js("const s = document.querySelector('#new-user select[name=groups]'); s.options[0].selected = true; return true;")
        .await;
    page.click("#new-user .create").await;
    page.until(
        "the one-time password",
        "return !!document.querySelector('#banner .secret');",
    )
    .await;
    let pw = page
        .js("return document.querySelector('#banner .secret').textContent;")
        .await;
    let pw = pw.as_str().unwrap();
    assert!(pw.len() >= 12);
    let row = app
        .state
        .store
        .agent_credentials("lily")
        .await
        .unwrap()
        .expect("created");
    let lily = app.state.store.agent(row.id).await.unwrap();
    assert_eq!(lily.name, "李丽<b>", "stored as typed");
    assert_eq!(app.state.store.agent_groups(row.id).await.unwrap().len(), 1);
    assert!(
        crate::login::browser::try_sign_in(&app, "lily", pw)
            .await
            .status()
            == 303
    );

    // A shared quick reply, its variable put in by the button (in English).
    page.goto(&format!("{}/lang/en?next=/admin", app.address))
        .await;
    page.until(
        "the quick-reply form",
        "return !!document.querySelector('#quick-replies .qr-new .add-reply');",
    )
    .await;
    page.type_in("#quick-replies .qr-new input[name=title]", "问候<i>")
        .await;
    page.click("#quick-replies .qr-new .insert-customer").await;
    page.type_in(
        "#quick-replies .qr-new textarea[name=content]",
        "您好，我是 {客服}",
    )
    .await;
    page.click("#quick-replies .qr-new .add-reply").await;
    page.until(
        "the reply listed",
        "return [...document.querySelectorAll('#quick-replies .qr[data-reply] input[name=title]')]\
         .some(i => i.value === '问候<i>');",
    )
    .await;
    let shared = app.state.store.quick_replies_for(row.id).await.unwrap();
    assert_eq!(shared.len(), 1);
    assert_eq!(
        (
            shared[0].owner_agent_id,
            shared[0].title.as_str(),
            shared[0].content.as_str()
        ),
        (None, "问候<i>", "{customer_name}您好，我是 {客服}"),
        "shared, as typed"
    );

    // The accounts, with the callback URL to paste and no secret.
    let callback = format!("{}/wechat/demo-oa", app.address);
    page.until(
        "the accounts",
        &has_text("#accounts table[data-account=demo-oa] .callback", &callback),
    )
    .await;
    page.until(
        "the WeCom account",
        &has_text(
            "#accounts table[data-account=demo-kf] .callback",
            "/wecom/demo-kf",
        ),
    )
    .await;
    let text = page
        .js("return document.body.textContent;")
        .await
        .as_str()
        .unwrap()
        .to_owned();
    assert!(text.contains("wx00000000fake0000"), "the AppID is shown");
    for a in &app.settings.accounts {
        assert!(!text.contains(a.secret.expose()), "no secret shown");
        assert!(!text.contains(a.token.expose()), "no token shown");
    }
    assert_eq!(
        page.js("return !document.querySelector('#quick-replies i, #accounts i');")
            .await,
        json!(true),
        "text stays text"
    );

    // In Chinese too.
    page.goto(&format!("{}/lang/zh?next=/admin", app.address))
        .await;
    page.until(
        "the accounts in Chinese",
        &has_text("#accounts table[data-account=demo-oa] caption", "公众号"),
    )
    .await;
    page.until(
        "the reply listed again",
        &has_text(
            "#quick-replies .qr-new button.insert-customer",
            "插入 {客户}",
        ),
    )
    .await;
    page.js("document.getElementById('quick-replies').scrollIntoView(); return true;")
        .await;
    page.screenshot("admin.png").await;
}

#[tokio::test]
async fn a_supervisor_searches_the_history_in_the_browser() {
    let w = crate::board::world().await;
    let app = &w.app;
    say(app, "oA", 41, "请问我的车卖了吗？什么时候打款").await;
    say(
        app,
        "oB",
        42,
        "<img src=x onerror=\"window.__xss=1\">打款进度怎么样",
    )
    .await;
    say(app, "oC", 43, "北京的打款也到了吗").await;
    say(app, "oA", 44, "过户需要带身份证和行驶证").await;
    let stored = app.stored("demo-oa").await;
    assert!(
        stored
            .iter()
            .any(|m| m.channel_msg_id.as_deref() == Some("43"))
    );
    app.state.search.drain().await.unwrap();

    let page = Page::open().await;
    page.sign_in(app, "sue", AGENT_PW).await;
    page.goto(&format!("{}/lang/zh?next=/search", app.address))
        .await;
    page.until("the search page", "return location.pathname === '/search';")
        .await;
    page.type_in("#q", "打款").await;
    page.click("#search-form button[type=submit]").await;
    page.until(
        "two hits",
        "return document.querySelectorAll('#results .hit').length === 2;",
    )
    .await;
    page.until("the word marked", &has_text("#results .hit mark", "打款"))
        .await;
    assert_eq!(
        page.js(&has_text("#results .hit", "北京")).await,
        json!(false),
        "another group's customer"
    );
    // Customer text stays text.
    page.until(
        "the markup shown as text",
        &has_text("#results .hit .text", "__xss=1\">"),
    )
    .await;
    assert_eq!(
        page.js("return window.__xss === undefined && !document.querySelector('#results img');")
            .await,
        json!(true)
    );
    // A hit opens its place in the customer's history.
    page.click("#results .hit:last-child").await;
    page.until("the context", &has_text("#context .cmsg.target", "车卖了"))
        .await;
    page.until("the later message", &has_text("#context .cmsg", "行驶证"))
        .await;
    page.screenshot("search.png").await;
}

/// A company's page on its own origin, embedding the widget's loader from
/// Kefu: a plain HTTP server answering every request with the page.
async fn host_page(listener: std::net::TcpListener, kefu: String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let body = format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>车商城</title></head>\
         <body><h1>二手车，放心买卖</h1>\
         <script src=\"{kefu}/widget.js\" data-key=\"pk_demo_web_example_key\" async></script></body></html>"
    );
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = 0;
                while !buf[..got].windows(4).any(|w| w == b"\r\n\r\n") && got < buf.len() {
                    match conn.read(&mut buf[got..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got += n,
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes()).await;
                let _ = conn.write_all(body.as_bytes()).await;
            });
        }
    });
}

/// Real PNGs, 1×1 and 2×2 (a browser decodes them: `naturalWidth` 1 or 2).
/// Two different files: the media store keeps equal ones once.
fn png_of_width(w: u32) -> Vec<u8> {
    let b64 = match w {
        1 => {
            "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
        }
        _ => {
            "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAYAAABytg0kAAAAEUlEQVR4nGM4ISf3H4QZYAwARzQIDWbIDqkAAAAASUVORK5CYII="
        }
    };
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

/// Opens the widget's panel on the company's page and works inside its frame.
async fn open_widget(visitor: &Page, host_origin: &str) {
    visitor.goto(host_origin).await;
    visitor
        .until(
            "the chat bubble",
            "return !!document.getElementById('kefu-widget-bubble');",
        )
        .await;
    visitor.click("#kefu-widget-bubble").await;
    let frame = visitor.find("#kefu-widget-frame").await;
    visitor
        .call(
            reqwest::Method::POST,
            "/frame",
            Some(json!({"id": {ELEMENT: frame}})),
        )
        .await;
    visitor
        .until(
            "the chat has started",
            "return document.body.dataset.ready === 'true';",
        )
        .await;
}

/// Whether the widget shows a stored message from `from` holding `css`
/// (a picture, a player) whose source is a `blob:` URL.
fn widget_shows(from: &str, css: &str) -> String {
    format!("return {};", widget_holds(from, css))
}

fn widget_holds(from: &str, css: &str) -> String {
    format!(
        "[...document.querySelectorAll('[data-test=message][data-from={from}]')]\
         .some(m => m.dataset.id && !m.dataset.state \
              && [...m.querySelectorAll({css:?})].some(e => e.src.startsWith('blob:')))"
    )
}

/// A microphone for the chat page where headless Chromium has none: a tone
/// from Web Audio, as `getUserMedia` gives it; or a refusal.
const FAKE_MICROPHONE: &str = "window.__mics = 0; \
    navigator.mediaDevices.getUserMedia = async (c) => { \
      window.__mics++; \
      if (!c || !c.audio) throw new Error('audio asked'); \
      const ctx = new AudioContext(); const tone = ctx.createOscillator(); \
      const out = ctx.createMediaStreamDestination(); tone.connect(out); tone.start(); \
      return out.stream; }; return true;";
const REFUSED_MICROPHONE: &str = "navigator.mediaDevices.getUserMedia = async () => { \
      throw new DOMException('Permission denied', 'NotAllowedError'); }; return true;";

#[tokio::test]
async fn a_website_visitor_chats_with_an_agent_in_the_browser() {
    let host = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host_origin = format!("http://127.0.0.1:{}", host.local_addr().unwrap().port());
    let origin = host_origin.clone();
    let app = spawn_app_with(move |s| {
        s.routing.queue_sweep_secs = 3600;
        s.routing.reconcile_secs = 3600;
        s.sites[0].allowed_origins = vec![origin];
    })
    .await;
    host_page(host, app.address.clone()).await;
    let wendy = staff(&app, "wendy", Role::Agent, AgentStatus::Idle).await;
    let mut rx = app.state.bus.subscribe();

    // The agent's console in one browser…
    let agent = Page::open().await;
    agent.sign_in(&app, "wendy", AGENT_PW).await;
    agent
        .goto(&format!("{}/lang/zh?next=/workbench", app.address))
        .await;
    agent
        .until(
            "the socket is open",
            "return document.getElementById('conn').className === 'conn ok';",
        )
        .await;

    // …the customer on the company's website in another.
    let visitor = Page::open().await;
    open_widget(&visitor, &host_origin).await;
    visitor
        .type_in("[data-test=composer]", "你好，我想问问卖车流程")
        .await;
    visitor.click("[data-test=send]").await;
    visitor
        .until(
            "the message is stored",
            "return [...document.querySelectorAll('[data-test=message][data-from=customer]')]\
             .some(e => e.textContent.includes('卖车流程') && !e.dataset.state);",
        )
        .await;
    // Robot first; the visitor asks for a person.
    visitor.click("[data-test=handoff]").await;
    let assigned = changed(&mut rx, |c| c.state == "assigned").await;
    assert_eq!(assigned.agent, Some(wendy));
    visitor
        .until(
            "the agent's name is shown",
            &has_text("[data-test=status]", "wendy 名字"),
        )
        .await;

    // The agent sees the web customer, with the 网页 badge, and answers.
    agent
        .until(
            "the conversation is listed",
            &has_text("#convs li.conv", "网页"),
        )
        .await;
    agent.click("#convs li.conv").await;
    agent
        .until("its messages", &has_text("#messages .msg.in", "卖车流程"))
        .await;
    agent
        .type_in("#text", "您好，我是 wendy，卖车只需三步")
        .await;
    agent.click("#send").await;
    visitor
        .until(
            "the agent's answer arrives",
            "return [...document.querySelectorAll('[data-test=message][data-from=agent]')]\
             .some(e => e.textContent.includes('卖车只需三步'));",
        )
        .await;
    agent
        .until(
            "shown as sent",
            &has_text("#messages .msg.out .status", "已发送"),
        )
        .await;
    assert!(
        app.fake.requests_to("message/custom/send").is_empty(),
        "nothing went to WeChat"
    );
    // Read marks both ways: the open panel tells the console the visitor
    // has seen the answer; the agent, who has the conversation in view, has
    // read the visitor's message, and the widget says 已读 under it.
    agent
        .until(
            "the answer marked read by the visitor",
            &has_text("#messages .msg.out .status", "已读"),
        )
        .await;
    visitor
        .until(
            "the visitor's message marked read",
            "return [...document.querySelectorAll('[data-test=message][data-from=customer]')]\
             .some(m => m.textContent.includes('卖车流程') && m.querySelector('[data-test=read]'));",
        )
        .await;
    assert_eq!(
        visitor
            .js("return document.querySelectorAll('[data-test=read]').length;")
            .await,
        json!(1),
        "only under the latest message read"
    );
    visitor.screenshot("widget.png").await;

    // Hostile text from the agent's side stays text in the widget too.
    agent
        .type_in("#text", "<img src=x onerror=\"window.__pwned=1\">")
        .await;
    agent.click("#send").await;
    visitor
        .until(
            "shown as text",
            &has_text("[data-test=message][data-from=agent]", "<img src=x onerror"),
        )
        .await;
    assert_eq!(
        visitor.js("return window.__pwned === undefined && !document.querySelector('[data-test=messages] img');").await,
        json!(true)
    );

    // The visitor attaches a picture through the clip button's file input.
    let png = png_of_width(1);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("photo.png");
    std::fs::write(&file, &png).unwrap();
    visitor
        .type_in("[data-test=file]", file.to_str().unwrap())
        .await;
    visitor
        .until(
            "the visitor's picture, stored and shown",
            &widget_shows("customer", "img"),
        )
        .await;
    // The agent's console shows it from the media store, decoded.
    agent
        .until(
            "the picture in the console",
            "return [...document.querySelectorAll('#messages .msg.in img[src^=\"/media/\"]')]\
             .some(i => i.complete && i.naturalWidth === 1);",
        )
        .await;
    visitor
        .until(
            "the read mark moved to the picture",
            "const marks = document.querySelectorAll('[data-test=read]'); \
             return marks.length === 1 && !!marks[0].closest('[data-test=message]').querySelector('img');",
        )
        .await;
    let stored = app.stored("demo-web").await;
    let picture = stored
        .iter()
        .find(|m| m.msg_type == "image" && m.direction == "in")
        .expect("the picture is stored as the visitor's");
    assert!(picture.media_object_id.is_some(), "{picture:?}");

    // A picture from the agent arrives in the widget: fetched with the
    // token header and shown from a blob: URL.
    let s = crate::desk::session(&app, "wendy").await;
    let (status, body) = crate::agent_media::upload(
        &app,
        &s,
        assigned.conversation,
        "client_id=wendy-pic-1&name=reply.png",
        "image/png",
        png_of_width(2),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    visitor
        .until(
            "the agent's picture",
            &widget_shows("agent", "img[data-test=message-image]"),
        )
        .await;
    visitor
        .until(
            "decoded from the blob",
            "return [...document.querySelectorAll('[data-test=message][data-from=agent] img')]\
             .some(i => i.complete && i.naturalWidth === 2);",
        )
        .await;
    let token = visitor
        .js("return localStorage.getItem('kefu.visitor.pk_demo_web_example_key');")
        .await
        .as_str()
        .expect("the visitor's token")
        .to_owned();
    let secret = token.split('.').nth(1).expect("site.secret").to_owned();
    assert_eq!(
        visitor
            .js(&format!(
                "const s = {secret:?}; \
                 return performance.getEntriesByType('resource').filter(r => r.name.includes(s)).length \
                   + [...document.querySelectorAll('[src], [href]')] \
                     .filter(e => (e.getAttribute('src') || e.getAttribute('href')).includes(s)).length;"
            ))
            .await,
        json!(0),
        "the token never goes in a URL the page fetches or shows"
    );
    // A tap shows it at full size; Escape closes it.
    visitor
        .click("[data-test=message][data-from=agent] .thumb")
        .await;
    visitor
        .until(
            "the picture at full size",
            "return !!document.querySelector('[data-test=viewer] img[src^=\"blob:\"]');",
        )
        .await;
    visitor.click("[data-test=viewer]").await;
    visitor
        .until(
            "closed",
            "return !document.querySelector('[data-test=viewer]');",
        )
        .await;

    // A voice message, recorded on the chat page opened directly (as an
    // app's WebView does; the loader's frame is not allowed the microphone),
    // by the same visitor.
    visitor
        .call(reqwest::Method::POST, "/frame", Some(json!({"id": null})))
        .await;
    let chat = format!("{}/widget/chat?key=pk_demo_web_example_key", app.address);
    visitor.goto(&chat).await;
    visitor
        .js(&format!(
            "localStorage.setItem('kefu.visitor.pk_demo_web_example_key', {token:?}); return true;"
        ))
        .await;
    visitor.goto(&chat).await;
    visitor
        .until(
            "the same visitor's conversation",
            &format!(
                "return document.body.dataset.ready === 'true' && {};",
                widget_holds("agent", "img")
            ),
        )
        .await;
    // Refused: said in words, nothing recorded.
    visitor.js(REFUSED_MICROPHONE).await;
    visitor.click("[data-test=record]").await;
    visitor
        .until("the refusal", &has_text("[data-test=banner]", "麦克风"))
        .await;
    assert_eq!(
        visitor
            .js("return document.querySelector('[data-test=recording]').hidden;")
            .await,
        json!(true)
    );
    // Tap to start, the time running, tap to stop and send.
    visitor.js(FAKE_MICROPHONE).await;
    visitor.click("[data-test=record]").await;
    visitor
        .until(
            "recording for a second",
            "return !document.querySelector('[data-test=recording]').hidden \
             && document.querySelector('[data-test=record-time]').textContent.startsWith('0:01');",
        )
        .await;
    visitor.click("[data-test=record]").await;
    visitor
        .until(
            "the recording, stored and playable",
            &widget_shows("customer", "audio"),
        )
        .await;
    assert_eq!(visitor.js("return window.__mics;").await, json!(1));
    agent
        .until(
            "the voice message in the console",
            "return !!document.querySelector('#messages .msg.in audio[src^=\"/media/\"]');",
        )
        .await;
    let stored = app.stored("demo-web").await;
    let voice = stored
        .iter()
        .find(|m| m.msg_type == "voice" && m.direction == "in")
        .expect("the recording is stored as a voice message");
    assert!(voice.media_object_id.is_some(), "{voice:?}");
    // Back on the company's page for the rest.
    open_widget(&visitor, &host_origin).await;

    // The agent closes; the visitor rates the service with one tap.
    let (status, body) = crate::desk::api_post(
        &app,
        &format!("/api/conversations/{}/close", assigned.conversation.0),
        &s,
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    visitor
        .until(
            "the survey's buttons",
            "return document.querySelectorAll('[data-test=survey-score]').length === 5;",
        )
        .await;
    visitor
        .click("[data-test=survey-score][data-score='1']")
        .await;
    visitor
        .until(
            "thanked",
            &has_text(
                "[data-test=message][data-from=system]",
                kefu::conversation::effects::survey::THANKS_TEXT,
            ),
        )
        .await;
    assert_eq!(
        visitor
            .js("return document.querySelectorAll('[data-test=survey-score]').length;")
            .await,
        json!(0),
        "answered: the buttons are gone"
    );
    let surveys = app
        .state
        .store
        .surveys_of(assigned.conversation)
        .await
        .unwrap();
    assert_eq!(surveys[0].score, Some(1));
}

#[tokio::test]
async fn with_nobody_on_duty_a_visitor_leaves_a_message_in_the_browser() {
    let app = spawn_app_with(|_| {}).await;
    let page = Page::open().await;
    // The plain chat page, as a mobile site or an app's WebView opens it.
    page.goto(&format!(
        "{}/widget/chat?key=pk_demo_web_example_key",
        app.address
    ))
    .await;
    page.until(
        "the form instead of a person",
        "return document.body.dataset.ready === 'true' \
         && !document.querySelector('[data-test=leave-form]').hidden;",
    )
    .await;
    // Required fields are checked before anything is sent.
    page.click("[data-test=leave-submit]").await;
    page.until(
        "what is missing",
        &has_text("[data-test=leave-error]", "手机号"),
    )
    .await;
    page.type_in("[data-test=leave-name]", "李先生").await;
    page.type_in("[data-test=leave-phone]", "13800138000").await;
    page.type_in("[data-test=leave-message]", "明天上午想来看车")
        .await;
    page.click("[data-test=leave-submit]").await;
    page.until(
        "the message is shown as sent",
        &has_text(
            "[data-test=message][data-from=customer]",
            "明天上午想来看车",
        ),
    )
    .await;
    page.until(
        "the form is closed",
        "return document.querySelector('[data-test=leave-form]').hidden;",
    )
    .await;
    // The ticket is opened before the visitor is told it was taken.
    page.until(
        "told the message was taken",
        "return !!document.querySelector('[data-test=message][data-from=system]');",
    )
    .await;
    let stored = app.stored("demo-web").await;
    let m = stored
        .iter()
        .find(|m| {
            m.content
                .as_deref()
                .is_some_and(|c| c.contains("明天上午想来看车"))
        })
        .expect("stored");
    let customer = kefu::ids::CustomerId(m.customer_id.expect("linked"));
    let tickets = app.state.store.tickets_of_customer(customer).await.unwrap();
    assert_eq!(tickets.len(), 1);
    assert!(
        tickets[0].summary.contains("明天上午想来看车"),
        "{:?}",
        tickets[0]
    );
    let c = app.state.store.customer(customer).await.unwrap();
    assert_eq!(c.phone.as_deref(), Some("13800138000"));
}
