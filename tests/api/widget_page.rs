//! The web chat widget's front end through HTTP (issue 9): the chat page of
//! the example site (`wechat-config/sites/demo-web.toml`), framed only by
//! its allowed origins and carrying no inline script; the 404 page of an
//! unknown key; the page's script and style and the embed loader, served
//! with their types and a short public cache.

use reqwest::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderMap, X_CONTENT_TYPE_OPTIONS,
};

use crate::helpers::spawn_app;

const KEY: &str = "pk_demo_web_example_key";

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name)
        .unwrap_or_else(|| panic!("no {name} header: {h:?}"))
        .to_str()
        .unwrap()
}

/// The directive `name` of a policy, without its name.
fn directive<'a>(policy: &'a str, name: &str) -> Option<&'a str> {
    policy
        .split(';')
        .map(str::trim)
        .find_map(|d| d.strip_prefix(name).filter(|rest| rest.starts_with(' ')))
        .map(str::trim)
}

/// Every `<script …>` of a page with what it holds: `(open tag, body)`.
fn scripts(html: &str) -> Vec<(&str, &str)> {
    html.match_indices("<script")
        .map(|(at, _)| {
            let rest = &html[at..];
            let open_end = rest.find('>').expect("a closed <script> tag");
            let after = &rest[open_end + 1..];
            let close = after.find("</script>").expect("</script>");
            (&rest[..=open_end], &after[..close])
        })
        .collect()
}

#[tokio::test]
async fn the_chat_page_is_framed_only_by_the_sites_allowed_origins() {
    let app = spawn_app().await;
    let site = app
        .settings
        .site_by_key(KEY)
        .expect("the example site is in the test configuration");
    assert!(!site.allowed_origins.is_empty());

    let r = app.get(&format!("/widget/chat?key={KEY}")).await;
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(header(&h, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&h, CACHE_CONTROL.as_str()), "no-store");
    assert_eq!(header(&h, X_CONTENT_TYPE_OPTIONS.as_str()), "nosniff");
    assert!(
        h.get("x-frame-options").is_none(),
        "framing is the CSP's to say: {h:?}"
    );
    let csp = header(&h, CONTENT_SECURITY_POLICY.as_str());
    let mut ancestors: Vec<&str> = directive(csp, "frame-ancestors")
        .expect("frame-ancestors")
        .split(' ')
        .collect();
    ancestors.sort_unstable();
    let mut expected: Vec<&str> = site.allowed_origins.iter().map(String::as_str).collect();
    expected.push("'self'");
    expected.sort_unstable();
    assert_eq!(ancestors, expected, "{csp}");
    assert_eq!(directive(csp, "script-src"), Some("'self'"), "{csp}");
    assert_eq!(directive(csp, "connect-src"), Some("'self'"), "{csp}");
    assert_eq!(directive(csp, "object-src"), Some("'none'"), "{csp}");
    assert_eq!(directive(csp, "base-uri"), Some("'none'"), "{csp}");

    let html = r.text().await.unwrap();
    assert!(
        html.contains(r#"<html lang="zh-CN">"#),
        "Chinese by default"
    );
    assert!(html.contains(&format!(r#"data-key="{KEY}""#)));
    assert!(html.contains(r#"data-lang="zh""#));
    for origin in &site.allowed_origins {
        assert!(html.contains(origin.as_str()), "the page knows its parents");
    }
    assert!(html.contains(&format!("<title>{}</title>", site.name)));
    // What a browser test drives.
    for hook in [
        r#"data-test="messages""#,
        r#"data-test="composer""#,
        r#"data-test="send""#,
        r#"data-test="handoff""#,
        r#"data-test="status""#,
        r#"data-test="counter""#,
    ] {
        assert_eq!(html.matches(hook).count(), 1, "{hook} once");
    }
    assert!(html.contains(r#"aria-live="polite""#));
    assert!(
        html.contains(r#"<label for="text""#),
        "the composer is labelled"
    );
}

#[tokio::test]
async fn the_chat_page_runs_no_inline_script() {
    let app = spawn_app().await;
    let html = app
        .get(&format!("/widget/chat?key={KEY}&lang=en"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains(r#"<html lang="en">"#), "English when asked");
    assert!(html.contains(r#"data-lang="en""#));
    let found = scripts(&html);
    assert_eq!(found.len(), 1, "one script, the page's own: {found:?}");
    for (tag, body) in found {
        assert!(tag.contains(r#"src="/widget/static/widget.js""#), "{tag}");
        assert!(body.trim().is_empty(), "a script with a body: {tag}{body}");
    }
    let lower = html.to_ascii_lowercase();
    for inline in [
        " onclick=",
        " onload=",
        " onerror=",
        " onsubmit=",
        "javascript:",
    ] {
        assert!(!lower.contains(inline), "{inline} in the page");
    }
}

#[tokio::test]
async fn an_unknown_or_missing_key_is_a_404_page_that_says_so() {
    let app = spawn_app().await;
    for path in [
        "/widget/chat?key=pk_nobody_has_this_key",
        "/widget/chat?key=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "/widget/chat",
    ] {
        let r = app.get(path).await;
        assert_eq!(r.status(), 404, "{path}");
        assert_eq!(
            header(r.headers(), "content-type"),
            "text/html; charset=utf-8"
        );
        assert_eq!(header(r.headers(), CACHE_CONTROL.as_str()), "no-store");
        assert!(r.headers().get("x-frame-options").is_none());
        let csp = header(r.headers(), CONTENT_SECURITY_POLICY.as_str()).to_owned();
        assert_eq!(directive(&csp, "script-src"), Some("'self'"), "{csp}");
        let html = r.text().await.unwrap();
        assert!(html.contains("找不到这个在线客服"), "{html}");
        assert!(html.contains("This chat was not found"), "{html}");
        assert!(!html.contains("<script"), "no chat script on it: {html}");
        assert!(!html.contains("alert(1)"), "the key is not echoed: {html}");
    }
}

#[tokio::test]
async fn the_scripts_and_the_style_are_served_with_their_types() {
    let app = spawn_app().await;
    for (path, content_type, sample) in [
        (
            "/widget/static/widget.js",
            "text/javascript; charset=utf-8",
            "/widget/api/session",
        ),
        (
            "/widget/static/widget.css",
            "text/css; charset=utf-8",
            ".composer",
        ),
        (
            "/widget.js",
            "text/javascript; charset=utf-8",
            "window.KefuWidget",
        ),
    ] {
        let r = app.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers().clone();
        assert_eq!(header(&h, CONTENT_TYPE.as_str()), content_type, "{path}");
        assert_eq!(
            header(&h, CACHE_CONTROL.as_str()),
            "public, max-age=300",
            "{path}"
        );
        assert_eq!(header(&h, X_CONTENT_TYPE_OPTIONS.as_str()), "nosniff");
        let body = r.text().await.unwrap();
        assert!(body.contains(sample), "{path} is the right file");
    }
    // Sites load the loader from their own pages, and some require CORP.
    let r = app.get("/widget.js").await;
    assert_eq!(
        header(r.headers(), "cross-origin-resource-policy"),
        "cross-origin"
    );
    let loader = r.text().await.unwrap();
    let src = loader
        .lines()
        .find(|l| l.contains("frame.src ="))
        .expect("the loader sets the frame's address");
    assert!(
        src.contains("/widget/chat?key=") && !src.contains("TOKEN"),
        "the user's token never goes in the frame's URL: {src}"
    );
}
