//! Safe-mode Official Account text callbacks, built as WeChat builds them,
//! and the check of Kefu's answers (PROTOCOL.md §1.2–§1.4, §2.1, §2.4).
//!
//! A request is `POST /wechat/{account}?signature&timestamp&nonce&openid&encrypt_type=aes&msg_signature`
//! with body `<xml><ToUserName>gh_…</ToUserName><Encrypt>…</Encrypt></xml>`;
//! the encrypted plaintext is a text message from one of the simulated
//! followers with a unique 64-bit `MsgId`.

use std::fmt::Write as _;
use std::sync::Arc;

use actix_web::web::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use reqwest::Url;

use crate::wechat::crypto::MsgCrypt;
use crate::wechat::xml::parse_fields;

/// Length of a WeChat openid, e.g. `oLOAD00000000000000000000042`.
pub const OPENID_LEN: usize = 28;
/// How many recently sent callbacks each generator keeps for re-sending.
const RECENT: usize = 64;
/// At most this much of an unexpected answer is kept for the report.
const SNIPPET: usize = 160;

/// Chinese and emoji message texts (4-byte UTF-8, a ZWJ sequence, and
/// XML-looking text that must survive CDATA).
const TEXTS: &[&str] = &[
    "你好，请问我的订单什么时候发货？📦",
    "客服在吗？我想退货 🙏",
    "这个商品有优惠券吗😀😀",
    "地址写错了，能改成北京市朝阳区建国路88号吗？",
    "谢谢！👍 已经收到了",
    "<b>这不是标签</b> & 也不是实体 &amp;",
    "发票怎么开？🧾 公司抬头：上海某某科技有限公司",
    "😂🤣❤️‍🔥 表情包测试 🇨🇳",
];

/// The openid of simulated follower `i`: `oLOAD` and 23 digits.
pub fn follower_openid(i: u32) -> String {
    format!("oLOAD{i:023}")
}

/// What every generator of a run shares: the account's crypto, the callback
/// URL, the followers and the run's `MsgId` base.
#[derive(Debug)]
pub struct CallbackSpec {
    /// Token, AES key and appid of the Official Account.
    pub crypt: MsgCrypt,
    /// `…/wechat/{account}`, without query.
    pub url: Url,
    /// The account's original id (`gh_…`), the messages' `ToUserName`.
    pub to_user: String,
    /// Openids of the simulated followers.
    pub followers: Vec<String>,
    /// `MsgId` of sequence number 0; random per run, so ids never repeat
    /// across runs (two runs overlap with probability ~ n / 2^62).
    pub msg_id_base: i64,
    /// Share of requests (0.0–1.0) that re-send an already sent callback.
    pub duplicate_ratio: f64,
}

impl CallbackSpec {
    /// A spec with `followers` generated openids and a fresh random `MsgId`
    /// base in `[2^60, 2^62)` (19 digits, positive as an i64, room for 2^62
    /// requests).
    pub fn new(
        crypt: MsgCrypt,
        url: Url,
        to_user: String,
        followers: u32,
        duplicate_ratio: f64,
    ) -> Self {
        Self {
            crypt,
            url,
            to_user,
            followers: (0..followers.max(1)).map(follower_openid).collect(),
            msg_id_base: rand::rng().random_range((1i64 << 60)..(1i64 << 62)),
            duplicate_ratio: duplicate_ratio.clamp(0.0, 1.0),
        }
    }
}

/// One request to send.
#[derive(Debug, Clone)]
pub struct Callback {
    /// The URL with the signed query string.
    pub url: Url,
    /// The safe-mode envelope (cheap to clone).
    pub body: Bytes,
    /// The inner message's `MsgId`.
    pub msg_id: i64,
    /// Index of the sending follower in [`CallbackSpec::followers`].
    pub follower: u32,
    /// Whether this re-sends an earlier callback (same URL, same body).
    pub duplicate: bool,
}

/// Builds callbacks; one per worker, so nothing is shared but the spec.
///
/// The caller sends each callback before asking for the next one: a
/// duplicate is then always a re-send of an already answered message, like
/// WeChat's retries.
pub struct Generator {
    spec: Arc<CallbackSpec>,
    rng: SmallRng,
    recent: Vec<Callback>,
    recent_next: usize,
    plain: String,
    query: String,
}

impl Generator {
    /// A generator with its own deterministic random stream.
    pub fn new(spec: Arc<CallbackSpec>, seed: u64) -> Self {
        Self {
            spec,
            rng: SmallRng::seed_from_u64(seed),
            recent: Vec::with_capacity(RECENT),
            recent_next: 0,
            plain: String::with_capacity(512),
            query: String::with_capacity(256),
        }
    }

    /// The shared spec.
    pub fn spec(&self) -> &CallbackSpec {
        &self.spec
    }

    /// The next callback: with probability `duplicate_ratio` (once something
    /// was sent) a re-send of a recent one, otherwise a new message with
    /// `MsgId = msg_id_base + seq`. `seq` must be unique within the run.
    pub fn next(&mut self, seq: u64) -> Callback {
        if !self.recent.is_empty()
            && self.spec.duplicate_ratio > 0.0
            && self.rng.random_bool(self.spec.duplicate_ratio)
        {
            let i = self.rng.random_range(0..self.recent.len());
            let mut again = self.recent[i].clone();
            again.duplicate = true;
            return again;
        }
        let now = chrono::Utc::now().timestamp();
        let cb = self.fresh(seq, now);
        if self.spec.duplicate_ratio > 0.0 {
            if self.recent.len() < RECENT {
                self.recent.push(cb.clone());
            } else {
                self.recent[self.recent_next] = cb.clone();
                self.recent_next = (self.recent_next + 1) % RECENT;
            }
        }
        cb
    }

    /// A new, never sent callback created at unix time `now`.
    fn fresh(&mut self, seq: u64, now: i64) -> Callback {
        let follower = self.rng.random_range(0..self.spec.followers.len()) as u32;
        let text = TEXTS[self.rng.random_range(0..TEXTS.len())];
        self.build(seq, now, follower, text)
    }

    /// A new callback from follower `follower` saying `text #seq`
    /// (`kefu load console` chooses who says what).
    pub fn message(&mut self, seq: u64, follower: u32, text: &str) -> Callback {
        let follower = follower % self.spec.followers.len() as u32;
        self.build(seq, chrono::Utc::now().timestamp(), follower, text)
    }

    fn build(&mut self, seq: u64, now: i64, follower: u32, text: &str) -> Callback {
        let spec = &*self.spec;
        let openid = &spec.followers[follower as usize];
        let msg_id = spec
            .msg_id_base
            .wrapping_add(i64::try_from(seq).unwrap_or(i64::MAX));

        // Writing to a String cannot fail.
        self.plain.clear();
        let _ = write!(
            self.plain,
            "<xml><ToUserName><![CDATA[{}]]></ToUserName>\
             <FromUserName><![CDATA[{openid}]]></FromUserName>\
             <CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType>\
             <Content><![CDATA[{text} #{seq}]]></Content><MsgId>{msg_id}</MsgId></xml>",
            spec.to_user
        );
        let encrypt = spec.crypt.encrypt(&self.plain);
        let timestamp = now.to_string();
        let nonce = self.rng.random_range(100_000_000u32..u32::MAX).to_string();
        let signature = spec.crypt.signature(&timestamp, &nonce);
        let msg_signature = spec.crypt.msg_signature(&timestamp, &nonce, &encrypt);

        self.query.clear();
        let _ = write!(
            self.query,
            "signature={signature}&timestamp={timestamp}&nonce={nonce}&openid={openid}\
             &encrypt_type=aes&msg_signature={msg_signature}"
        );
        let mut url = spec.url.clone();
        url.set_query(Some(&self.query));

        let mut body = String::with_capacity(encrypt.len() + spec.to_user.len() + 80);
        body.push_str("<xml><ToUserName><![CDATA[");
        body.push_str(&spec.to_user);
        body.push_str("]]></ToUserName><Encrypt><![CDATA[");
        body.push_str(&encrypt);
        body.push_str("]]></Encrypt></xml>");

        Callback {
            url,
            body: Bytes::from(body),
            msg_id,
            follower,
            duplicate: false,
        }
    }
}

/// How an accepted answer looked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Body `success`.
    Success,
    /// Empty body.
    Empty,
    /// A valid encrypted passive reply.
    EncryptedReply,
}

/// Why a request failed; the report counts failures by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureKind {
    /// An HTTP status other than 200.
    Status(u16),
    /// HTTP 200 with a body that is not `success`, empty or a valid
    /// encrypted reply.
    BadBody,
    /// Connection refused or reset, protocol error, …
    Transport,
    /// No complete answer within the timeout.
    Timeout,
}

impl FailureKind {
    /// The report key: `status_500`, `bad_body`, `transport`, `timeout`.
    pub fn key(self) -> String {
        match self {
            Self::Status(code) => format!("status_{code}"),
            Self::BadBody => "bad_body".into(),
            Self::Transport => "transport".into(),
            Self::Timeout => "timeout".into(),
        }
    }
}

/// A failed request: the kind and a short description for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub detail: String,
}

impl Failure {
    fn bad_body(reason: &str, body: &[u8]) -> Self {
        Self {
            kind: FailureKind::BadBody,
            detail: format!("{reason}: {}", snippet(body)),
        }
    }
}

/// The start of a body, lossily decoded, for error reports.
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(SNIPPET)]);
    let mut s: String = text.chars().filter(|c| !c.is_control()).collect();
    if body.len() > SNIPPET {
        s.push('…');
    }
    format!("{s:?}")
}

/// Checks Kefu's answer to a callback from follower `openid`: HTTP 200 and
/// either body `success`, an empty body, or an encrypted reply envelope
/// whose `MsgSignature` verifies, which decrypts (for this appid) to
/// well-formed XML addressed to `openid`.
pub fn check_answer(
    status: u16,
    body: &[u8],
    crypt: &MsgCrypt,
    openid: &str,
) -> Result<Answer, Failure> {
    if status != 200 {
        return Err(Failure {
            kind: FailureKind::Status(status),
            detail: format!("HTTP {status}: {}", snippet(body)),
        });
    }
    if body.is_empty() {
        return Ok(Answer::Empty);
    }
    if body == b"success" {
        return Ok(Answer::Success);
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return Err(Failure::bad_body("not UTF-8", body));
    };
    if !text.trim_start().starts_with("<xml") {
        return Err(Failure::bad_body(
            "neither `success`, empty nor an <xml> reply",
            body,
        ));
    }
    check_encrypted_reply(text, crypt, openid)
        .map(|()| Answer::EncryptedReply)
        .map_err(|reason| Failure::bad_body(&reason, body))
}

/// Verifies and opens an encrypted passive reply (PROTOCOL.md §1.4).
fn check_encrypted_reply(xml: &str, crypt: &MsgCrypt, openid: &str) -> Result<(), String> {
    let fields = parse_fields(xml).map_err(|e| format!("reply is not valid XML ({e})"))?;
    let field = |name: &str| {
        fields
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| format!("reply lacks <{name}> (a plaintext reply in safe mode?)"))
    };
    let encrypt = field("Encrypt")?;
    let sig = field("MsgSignature")?;
    let timestamp = field("TimeStamp")?;
    let nonce = field("Nonce")?;
    let inner = crypt
        .decrypt_verified(sig, timestamp, nonce, encrypt)
        .map_err(|e| format!("encrypted reply rejected: {e}"))?;
    let inner =
        parse_fields(&inner).map_err(|e| format!("decrypted reply is not valid XML ({e})"))?;
    match inner.get("ToUserName") {
        Some(to) if to == openid => {}
        Some(to) => return Err(format!("reply addressed to {to:?}, not to {openid:?}")),
        None => return Err("decrypted reply lacks <ToUserName>".into()),
    }
    if !inner.contains_key("MsgType") {
        return Err("decrypted reply lacks <MsgType>".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use super::*;
    use crate::wechat::xml::{parse, parse_envelope};

    const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    const APPID: &str = "wx2c2769f8efd9abc2";

    fn crypt() -> MsgCrypt {
        MsgCrypt::new("spamtest", KEY, APPID).unwrap()
    }

    fn spec(followers: u32, duplicates: f64) -> Arc<CallbackSpec> {
        let url = Url::parse("http://127.0.0.1:1/wechat/demo-oa").unwrap();
        Arc::new(CallbackSpec::new(
            crypt(),
            url,
            "gh_0123456789ab".into(),
            followers,
            duplicates,
        ))
    }

    fn query(url: &Url) -> BTreeMap<String, String> {
        url.query_pairs().into_owned().collect()
    }

    #[test]
    fn openids_look_like_wechat_ones() {
        let id = follower_openid(42);
        assert_eq!(id.len(), OPENID_LEN);
        assert!(id.starts_with("oLOAD") && id.ends_with("42"), "{id}");
        assert_eq!(follower_openid(u32::MAX).len(), OPENID_LEN);
    }

    #[test]
    fn callback_verifies_and_decrypts_to_a_text_message_from_a_follower() {
        let spec = spec(7, 0.0);
        let mut g = Generator::new(spec.clone(), 1);
        let cb = g.next(5);
        assert!(!cb.duplicate);
        assert_eq!(cb.url.path(), "/wechat/demo-oa");
        let q = query(&cb.url);
        let keys: Vec<&str> = q.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "encrypt_type",
                "msg_signature",
                "nonce",
                "openid",
                "signature",
                "timestamp"
            ]
        );
        assert_eq!(q["encrypt_type"], "aes");
        let c = crypt();
        c.verify_signature(&q["signature"], &q["timestamp"], &q["nonce"])
            .unwrap();

        let body = std::str::from_utf8(&cb.body).unwrap();
        assert!(body.starts_with("<xml><ToUserName><![CDATA[gh_"), "{body}");
        let env = parse_envelope(body).unwrap();
        assert_eq!(env.to_user.as_deref(), Some("gh_0123456789ab"));
        c.verify_msg_signature(
            &q["msg_signature"],
            &q["timestamp"],
            &q["nonce"],
            &env.encrypt,
        )
        .unwrap();
        let plain = c
            .decrypt_verified(
                &q["msg_signature"],
                &q["timestamp"],
                &q["nonce"],
                &env.encrypt,
            )
            .unwrap();

        let msg = parse(&plain).unwrap();
        assert_eq!(msg.msg_type(), "text");
        assert_eq!(msg.msg_id(), Some(spec.msg_id_base + 5));
        assert_eq!(cb.msg_id, spec.msg_id_base + 5);
        let text = msg.text().unwrap();
        assert!(text.ends_with(" #5") && !text.is_ascii(), "{text}");
        let fields = parse_fields(&plain).unwrap();
        let from = &fields["FromUserName"];
        assert!(spec.followers.contains(from), "{from}");
        assert_eq!(from, &spec.followers[cb.follower as usize]);
        assert_eq!(&q["openid"], from);
        assert_eq!(fields["ToUserName"], "gh_0123456789ab");
        let created: i64 = fields["CreateTime"].parse().unwrap();
        assert!((chrono::Utc::now().timestamp() - created).abs() <= 2);
        assert_eq!(q["timestamp"], fields["CreateTime"]);
    }

    #[test]
    fn every_text_survives_the_round_trip() {
        let spec = spec(3, 0.0);
        let mut g = Generator::new(spec, 9);
        let c = crypt();
        let mut seen = HashSet::new();
        for seq in 0..200 {
            let cb = g.next(seq);
            let env = parse_envelope(std::str::from_utf8(&cb.body).unwrap()).unwrap();
            let msg = parse(&c.decrypt(&env.encrypt).unwrap()).unwrap();
            let text = msg.text().unwrap().to_owned();
            seen.insert(text.rsplit_once(" #").unwrap().0.to_owned());
        }
        let expected: HashSet<String> = TEXTS.iter().map(|s| s.to_string()).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn msg_ids_are_unique_within_and_across_runs() {
        let a = spec(10, 0.0);
        let b = spec(10, 0.0);
        assert_ne!(a.msg_id_base, b.msg_id_base);
        let mut ids = HashSet::new();
        for s in [a, b] {
            let mut g = Generator::new(s, 2);
            for seq in 0..500 {
                let cb = g.next(seq);
                assert!(cb.msg_id > 0);
                assert!(ids.insert(cb.msg_id), "repeated MsgId {}", cb.msg_id);
            }
        }
    }

    #[test]
    fn followers_are_spread_over_all_openids() {
        let spec = spec(5, 0.0);
        let mut g = Generator::new(spec, 3);
        let used: HashSet<u32> = (0..200).map(|s| g.next(s).follower).collect();
        assert_eq!(used, (0..5).collect());
    }

    #[test]
    fn duplicates_resend_earlier_callbacks_byte_for_byte() {
        let spec = spec(50, 0.3);
        let mut g = Generator::new(spec, 4);
        let mut originals: BTreeMap<i64, Callback> = BTreeMap::new();
        let mut dups = 0;
        for seq in 0..1000 {
            let cb = g.next(seq);
            if cb.duplicate {
                dups += 1;
                let orig = originals
                    .get(&cb.msg_id)
                    .expect("duplicate of an unsent MsgId");
                assert_eq!(orig.body, cb.body);
                assert_eq!(orig.url, cb.url);
                assert_eq!(orig.follower, cb.follower);
            } else {
                assert!(originals.insert(cb.msg_id, cb).is_none());
            }
        }
        assert!((200..400).contains(&dups), "{dups} duplicates of 1000");
        // Without duplicates nothing is kept or repeated.
        let mut g = Generator::new(spec_no_dups(), 4);
        assert!((0..100).all(|s| !g.next(s).duplicate));
        assert!(g.recent.is_empty());
    }

    fn spec_no_dups() -> Arc<CallbackSpec> {
        spec(50, 0.0)
    }

    #[test]
    fn answers_success_and_empty_are_accepted() {
        let c = crypt();
        assert_eq!(check_answer(200, b"success", &c, "o1"), Ok(Answer::Success));
        assert_eq!(check_answer(200, b"", &c, "o1"), Ok(Answer::Empty));
    }

    #[test]
    fn answers_with_wrong_status_or_body_fail_by_kind() {
        let c = crypt();
        let kind = |status, body: &[u8]| check_answer(status, body, &c, "o1").unwrap_err().kind;
        assert_eq!(kind(500, b"oops"), FailureKind::Status(500));
        assert_eq!(kind(401, b"success"), FailureKind::Status(401));
        assert_eq!(kind(200, b"SUCCESS"), FailureKind::BadBody);
        assert_eq!(kind(200, b"success\n"), FailureKind::BadBody);
        assert_eq!(kind(200, br#"{"errcode":0}"#), FailureKind::BadBody);
        assert_eq!(kind(200, b"\xff\xfe"), FailureKind::BadBody);
        // A plaintext reply is not acceptable in safe mode.
        let plain =
            "<xml><ToUserName><![CDATA[o1]]></ToUserName><MsgType><![CDATA[text]]></MsgType></xml>";
        let f = check_answer(200, plain.as_bytes(), &c, "o1").unwrap_err();
        assert_eq!(f.kind, FailureKind::BadBody);
        assert!(f.detail.contains("<Encrypt>"), "{}", f.detail);
        assert_eq!(FailureKind::Status(503).key(), "status_503");
        assert_eq!(FailureKind::BadBody.key(), "bad_body");
    }

    fn reply_to(openid: &str) -> String {
        format!(
            "<xml><ToUserName><![CDATA[{openid}]]></ToUserName>\
             <FromUserName><![CDATA[gh_0123456789ab]]></FromUserName>\
             <CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>\
             <Content><![CDATA[您好 😀]]></Content></xml>"
        )
    }

    #[test]
    fn a_valid_encrypted_reply_is_accepted() {
        let c = crypt();
        let body = c.encrypted_reply(&reply_to("o1"), "1409735669", "1320562132");
        assert_eq!(
            check_answer(200, body.as_bytes(), &c, "o1"),
            Ok(Answer::EncryptedReply)
        );
    }

    #[test]
    fn broken_encrypted_replies_are_bad_bodies() {
        let c = crypt();
        let check = |body: &str| check_answer(200, body.as_bytes(), &c, "o1").unwrap_err();

        let wrong_user = c.encrypted_reply(&reply_to("o2"), "1", "2");
        assert!(check(&wrong_user).detail.contains("not to"));

        let good = c.encrypted_reply(&reply_to("o1"), "1409735669", "1320562132");
        let tampered = good.replace("<TimeStamp>1409735669", "<TimeStamp>1409735670");
        let f = check(&tampered);
        assert_eq!(f.kind, FailureKind::BadBody);
        assert!(f.detail.contains("msg_signature"), "{}", f.detail);

        let other_app = MsgCrypt::new("spamtest", KEY, "wxOTHER").unwrap();
        let foreign = other_app.encrypted_reply(&reply_to("o1"), "1", "2");
        assert!(check(&foreign).detail.contains("receive id"));

        assert!(check("<xml><Encrypt>").detail.contains("XML"));
    }

    #[test]
    fn snippets_are_short_and_single_line() {
        let long = "a\n".repeat(500);
        let s = snippet(long.as_bytes());
        assert!(
            s.len() < 200 && !s.contains('\n') && s.ends_with("…\""),
            "{s}"
        );
    }
}
