//! Hot path of a WeChat callback: verify `msg_signature`, decrypt and parse a
//! safe-mode text message; and build an encrypted passive reply.
//!
//! Run with `cargo bench --bench protocol`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use kefu::wechat::{MsgCrypt, Reply, parse, parse_envelope};

const TOKEN: &str = "spamtest";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const APPID: &str = "wx2c2769f8efd9abc2";
const TIMESTAMP: &str = "1409735669";
const NONCE: &str = "1320562132";

fn crypt() -> MsgCrypt {
    MsgCrypt::new(TOKEN, AES_KEY, APPID).expect("benchmark key is valid")
}

/// A typical inbound safe-mode body (`<ToUserName/><Encrypt/>`) wrapping a
/// short Chinese text message, plus its `msg_signature`.
fn safe_mode_request(crypt: &MsgCrypt) -> (String, String) {
    let inner = "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n\
                 <FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\n\
                 <CreateTime>1409735668</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n\
                 <Content><![CDATA[你好，我想咨询一下订单退款的问题 😀]]></Content>\n\
                 <MsgId>6054768590064713728</MsgId>\n</xml>";
    let encrypt = crypt.encrypt_with_random(inner, b"0123456789abcdef");
    let sig = crypt.msg_signature(TIMESTAMP, NONCE, &encrypt);
    let body = format!(
        "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n\
         <Encrypt><![CDATA[{encrypt}]]></Encrypt>\n</xml>"
    );
    (body, sig)
}

fn decrypt_parse_text(c: &mut Criterion) {
    let crypt = crypt();
    let (body, sig) = safe_mode_request(&crypt);
    c.bench_function("decrypt_parse_text", |b| {
        b.iter(|| {
            let envelope = parse_envelope(black_box(&body)).expect("valid envelope");
            let plain = crypt
                .decrypt_verified(black_box(&sig), TIMESTAMP, NONCE, &envelope.encrypt)
                .expect("valid ciphertext");
            parse(&plain).expect("valid message")
        })
    });
}

fn encrypt_reply(c: &mut Criterion) {
    let crypt = crypt();
    let reply = Reply::text("您好，您的退款已提交，预计 1-3 个工作日到账。");
    c.bench_function("encrypt_reply", |b| {
        b.iter(|| {
            let xml = black_box(&reply).to_xml(
                "oyORnuP8q7ou2gfYjqLzSIWZf0rs",
                "gh_10f6c3c3ac5a",
                1409735670,
            );
            crypt.encrypted_reply(&xml, TIMESTAMP, NONCE)
        })
    });
}

criterion_group!(benches, decrypt_parse_text, encrypt_reply);
criterion_main!(benches);
