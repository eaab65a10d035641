//! The official and SDK test vectors of PROTOCOL.md §4 (V2–V8) run through
//! the public API end to end: signature, decryption, envelope and message
//! parsing, deterministic encryption. V0/V1 live in `signature.rs`.

use super::crypto::{CryptoError, MsgCrypt};
use super::xml::{self, InboundKind, MessageBody};

const V2_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const V2_ENCRYPT: &str = "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=";
const V3_ENCRYPT: &str = "rTNFcsut4LfGuAFKEUVVpwcaCOTJzOd9twZdIW910jb3k+iicx2uvhttIZ3Qg9Qgty3BEF2xbOrz6boTfb30dMomcgrkTqdFPwnhqbk+kIQ7rZiwny9D7NUrTgA5kpX3KsZvrXzUZyP2x9YOlxbgm572lmxKvM7HAQQhIQ/p6HBmoY30bGXFK0BtIu1pW9TjhOYrLQoU18nWYjWqDA1ynkmOytpv7QRI1P1+0NoxL0q2zO1DgeSvnE8CZGo/o5Ap/WHK5W2RAsinpzN4/LjPnmB6U01I5XCoJoC0GK/yMZycd2Oh8Nq6+wBkC1U85oy0ktOY4nLvsQMLrourmMGdZHuTbqpeJ8Ao/5PRYJ+WBvRUwPfGKBL2+2IKZF49vAJqkcGWSHGE76ZN2erXeuNazf/o9o3lIE3q739o4c8t9QGPe31GT2Go/rOz1BsrASwvauNulCh+++yz+CQzBIuikA==";
const V5_ENCRYPT: &str = "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==";
const V7_ENCRYPT: &str = "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=";
const V8_ENCRYPT: &str = "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+";

fn v2() -> MsgCrypt {
    MsgCrypt::new("spamtest", V2_KEY, "wx2c2769f8efd9abc2").unwrap()
}

fn v7() -> MsgCrypt {
    MsgCrypt::new(
        "123456",
        "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR",
        "wx49f0ab532d5d035a",
    )
    .unwrap()
}

#[test]
fn v2_official_sample_decrypt_signatures_and_parse() {
    let c = v2();
    assert_eq!(
        c.signature("1409735669", "1320562132"),
        "16120ec1b8dbb870f510d87ce6bc2463eae6ca1a"
    );
    c.verify_signature(
        "16120ec1b8dbb870f510d87ce6bc2463eae6ca1a",
        "1409735669",
        "1320562132",
    )
    .unwrap();
    let sig = "5d197aaffba7e9b25a30732f161a50dee96bd5fa";
    assert_eq!(c.msg_signature("1409735669", "1320562132", V2_ENCRYPT), sig);
    let plain = c
        .decrypt_verified(sig, "1409735669", "1320562132", V2_ENCRYPT)
        .unwrap();
    assert_eq!(
        plain,
        "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\n<CreateTime>1409735668</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[abcdteT]]></Content>\n<MsgId>6054768590064713728</MsgId>\n</xml>"
    );
    let m = xml::parse(&plain).unwrap();
    assert_eq!(m.to_user, "gh_10f6c3c3ac5a");
    assert_eq!(m.from_user, "oyORnuP8q7ou2gfYjqLzSIWZf0rs");
    assert_eq!(m.create_time, 1409735668);
    assert_eq!(
        m.kind,
        InboundKind::Message {
            msg_id: Some(6054768590064713728),
            body: MessageBody::Text {
                content: "abcdteT".into()
            }
        }
    );
}

#[test]
fn v2_wrong_plain_signature_and_tampered_msg_signature() {
    let c = v2();
    assert_eq!(
        c.verify_signature(
            "16120ec1b8dbb870f510d87ce6bc2463eae6ca1b",
            "1409735669",
            "1320562132"
        ),
        Err(CryptoError::BadSignature)
    );
    assert_eq!(
        c.decrypt_verified(
            "5d197aaffba7e9b25a30732f161a50dee96bd5fa",
            "1409735669",
            "1320562133",
            V2_ENCRYPT
        ),
        Err(CryptoError::BadMsgSignature)
    );
}

#[test]
fn v3_easywechat_decrypt_bad_signature_and_foreign_appid() {
    let c = MsgCrypt::new("pamtest", V2_KEY, "wxb11529c136998cb6").unwrap();
    let plain = c
        .decrypt_verified(
            "4f3ad57b6989f09f4eb392acce4f9e93942ed890",
            "1458300676",
            "260774613",
            V3_ENCRYPT,
        )
        .unwrap();
    assert_eq!(
        plain,
        "<xml><URL><![CDATA[http://wechat.laravel.so/server]]></URL><ToUserName><![CDATA[asdasdasd]]></ToUserName><FromUserName><![CDATA[asdasdasdsadasd]]></FromUserName><CreateTime>1234567898</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hello]]></Content><MsgId>12345</MsgId></xml>"
    );
    assert_eq!(
        c.decrypt_verified("invalid-signature", "1458300676", "260774613", V3_ENCRYPT),
        Err(CryptoError::BadMsgSignature)
    );
    let foreign = MsgCrypt::new("pamtest", V2_KEY, "invalid appid").unwrap();
    assert_eq!(
        foreign.decrypt_verified(
            "4f3ad57b6989f09f4eb392acce4f9e93942ed890",
            "1458300676",
            "260774613",
            V3_ENCRYPT
        ),
        Err(CryptoError::ReceiveId)
    );
}

#[test]
fn v4_wxjava_deterministic_encryption() {
    let c = MsgCrypt::new("pamtest", V2_KEY, "wxb11529c136998cb6").unwrap();
    let random = b"aaaabbbbccccdddd";
    assert_eq!(
        c.encrypt_with_random("我是中文abcd123", random),
        "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
    );
    let reply_msg2 = "<xml><ToUserName><![CDATA[oia2Tj我是中文jewbmiOUlr6X-1crbLOvLw]]></ToUserName><FromUserName><![CDATA[gh_7f083739789a]]></FromUserName><CreateTime>1407743423</CreateTime><MsgType><![CDATA[video]]></MsgType><Video><MediaId><![CDATA[eYJ1MbwPRJtOvIEabaxHs7TX2D-HV71s79GUxqdUkjm6Gs2Ed1KF3ulAOA9H1xG0]]></MediaId><Title><![CDATA[testCallBackReplyVideo]]></Title><Description><![CDATA[testCallBackReplyVideo]]></Description></Video></xml>";
    let expected2 = "jn1L23DB+6ELqJ+6bruv23M2GmYfkv0xBh2h+XTBOKVKcgDFHle6gqcZ1cZrk3e1qjPQ1F4RsLWzQRG9udbKWesxlkupqcEcW7ZQweImX9+wLMa0GaUzpkycA8+IamDBxn5loLgZpnS7fVAbExOkK5DYHBmv5tptA9tklE/fTIILHR8HLXa5nQvFb3tYPKAlHF3rtTeayNf0QuM+UW/wM9enGIDIJHF7CLHiDNAYxr+r+OrJCmPQyTy8cVWlu9iSvOHPT/77bZqJucQHQ04sq7KZI27OcqpQNSto2OdHCoTccjggX5Z9Mma0nMJBU+jLKJ38YB1fBIz+vBzsYjrTmFQ44YfeEuZ+xRTQwr92vhA9OxchWVINGC50qE/6lmkwWTwGX9wtQpsJKhP+oS7rvTY8+VdzETdfakjkwQ5/Xka042OlUb1/slTwo4RscuQ+RdxSGvDahxAJ6+EAjLt9d8igHngxIbf6YyqqROxuxqIeIch3CssH/LqRs+iAcILvApYZckqmA7FNERspKA5f8GoJ9sv8xmGvZ9Yrf57cExWtnX8aCMMaBropU/1k+hKP5LVdzbWCG0hGwx/dQudYR/eXp3P0XxjlFiy+9DMlaFExWUZQDajPkdPrEeOwofJb";
    assert_eq!(c.encrypt_with_random(reply_msg2, random), expected2);
    assert_eq!(c.decrypt(expected2).unwrap(), reply_msg2);
}

#[test]
fn v5_wecom_official_decrypt_with_agent_id() {
    let c = MsgCrypt::new(
        "QDG6eK",
        "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
        "wx5823bf96d3bd56c7",
    )
    .unwrap();
    let body = format!(
        "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><Encrypt><![CDATA[{V5_ENCRYPT}]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>"
    );
    let env = xml::parse_envelope(&body).unwrap();
    assert_eq!(env.agent_id.as_deref(), Some("218"));
    let plain = c
        .decrypt_verified(
            "477715d11cdb4164915debcba66cb864d751f3e6",
            "1409659813",
            "1372623149",
            &env.encrypt,
        )
        .unwrap();
    assert_eq!(
        plain,
        "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n<FromUserName><![CDATA[mycreate]]></FromUserName>\n<CreateTime>1409659813</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[hello]]></Content>\n<MsgId>4561255354251345929</MsgId>\n<AgentID>218</AgentID>\n</xml>"
    );
    let m = xml::parse(&plain).unwrap();
    assert_eq!(m.from_user, "mycreate");
    assert_eq!(m.msg_id(), Some(4561255354251345929));
    assert_eq!(m.field("AgentID").as_deref(), Some("218"));
}

/// Minimal percent-decoder for the query-string form of the vectors.
fn url_decode(s: &str) -> String {
    s.replace("%2F", "/")
        .replace("%2B", "+")
        .replace("%3D", "=")
}

#[test]
fn v6_wecom_url_verification_echostr() {
    let c = MsgCrypt::new(
        "QDG6eK",
        "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
        "wx5823bf96d3bd56c7",
    )
    .unwrap();
    let url_form = "P9nAzCzyDtyTWESHep1vC5X9xho%2FqYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp%2B4RPcs8TgAE7OaBO%2BFZXvnaqQ%3D%3D";
    let echostr = url_decode(url_form);
    assert_eq!(
        echostr,
        "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
    );
    let sig = "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3";
    assert_eq!(
        c.decrypt_verified(sig, "1409659589", "263014780", &echostr)
            .unwrap(),
        "1616140317555161061"
    );
    // Forgetting to URL-decode is caught (signature first, base64 after).
    assert_eq!(
        c.verify_msg_signature(sig, "1409659589", "263014780", url_form),
        Err(CryptoError::BadMsgSignature)
    );
    assert_eq!(c.decrypt(url_form), Err(CryptoError::Base64));
}

#[test]
fn v7a_wechatpy_echo_and_must_fail_nonce() {
    let c = v7();
    let echostr =
        "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q==";
    let sig = "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96";
    assert_eq!(
        c.decrypt_verified(sig, "1411443780", "437374425", echostr)
            .unwrap(),
        "5927782489442352469"
    );
    assert_eq!(
        c.decrypt_verified(sig, "1411443780", "437374424", echostr),
        Err(CryptoError::BadMsgSignature)
    );
}

#[test]
fn v7b_wechatpy_decrypt_message() {
    let c = v7();
    let body = format!(
        "<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>\n<Encrypt><![CDATA[{V7_ENCRYPT}]]></Encrypt>\n<AgentID><![CDATA[1]]></AgentID>\n</xml>"
    );
    let env = xml::parse_envelope(&body).unwrap();
    assert_eq!(env.to_user.as_deref(), Some("wx49f0ab532d5d035a"));
    let plain = c
        .decrypt_verified(
            "74d92dfeb87ba7c714f89d98870ae5eb62dff26d",
            "1411525903",
            "461056294",
            &env.encrypt,
        )
        .unwrap();
    let m = xml::parse(&plain).unwrap();
    assert_eq!(m.from_user, "messense");
    assert_eq!(m.msg_id(), Some(4363689963896700987));
    assert!(
        matches!(m.kind, InboundKind::Message { body: MessageBody::Text { ref content }, .. } if content == "test")
    );
}

#[test]
fn v7c_wechatpy_deterministic_encrypted_reply() {
    let reply = "<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]></ToUserName>\n<AgentID>1</AgentID>\n<CreateTime>1411525903</CreateTime>\n</xml>";
    let expected = "<xml>\n<Encrypt><![CDATA[9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3]]></Encrypt>\n<MsgSignature><![CDATA[407518b7649e86ef23978113f92d27afa9296533]]></MsgSignature>\n<TimeStamp>1411525903</TimeStamp>\n<Nonce><![CDATA[461056294]]></Nonce>\n</xml>";
    let out =
        v7().encrypted_reply_with_random(reply, "1411525903", "461056294", b"1234567890123456");
    assert_eq!(out, expected);
}

#[test]
fn v8_wecom_newer_sample_echo_and_decrypt_without_cdata() {
    let c = MsgCrypt::new(
        "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo",
        "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt",
        "ww1436e0e65a779aee",
    )
    .unwrap();
    let echostr =
        "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA==";
    assert_eq!(
        c.decrypt_verified(
            "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb",
            "1476416373",
            "47744683",
            echostr
        )
        .unwrap(),
        "1288432023552776189"
    );
    let plain = c
        .decrypt_verified(
            "0c3914025cb4b4d68103f6bfc8db550f79dcf48e",
            "1476422779",
            "1597212914",
            V8_ENCRYPT,
        )
        .unwrap();
    assert_eq!(
        plain,
        "<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun</FromUserName><CreateTime>1476422779</CreateTime><MsgType>text</MsgType><Content>你好</Content><MsgId>1456453720</MsgId><AgentID>1000002</AgentID></xml>"
    );
    let m = xml::parse(&plain).unwrap();
    assert_eq!(m.from_user, "ChenJiaShun");
    assert!(
        matches!(m.kind, InboundKind::Message { body: MessageBody::Text { ref content }, .. } if content == "你好")
    );
    assert_eq!(m.field("AgentID").as_deref(), Some("1000002"));
}

#[test]
fn encrypted_reply_round_trips_and_escapes_nonce() {
    let c = v7();
    let out = c.encrypted_reply("<xml/>", "1<2", "a]]>b");
    assert!(out.contains("<TimeStamp>1&lt;2</TimeStamp>"));
    let fields = xml::parse_fields(&out).unwrap();
    assert_eq!(fields.get("Nonce").map(String::as_str), Some("a]]>b"));
    let enc = fields.get("Encrypt").unwrap();
    let sig = fields.get("MsgSignature").unwrap();
    assert_eq!(
        c.decrypt_verified(sig, "1<2", "a]]>b", enc).unwrap(),
        "<xml/>"
    );
}
