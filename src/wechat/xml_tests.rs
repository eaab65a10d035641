//! Unit tests of [`super`] (XML reading, messages, events, DTD rejection),
//! kept in their own file to keep `xml.rs` short.

use super::*;
use proptest::prelude::*;

const NUMERIC: &[&str] = &[
    "CreateTime",
    "MsgId",
    "MsgID",
    "TotalCount",
    "FilterCount",
    "SentCount",
    "ErrorCount",
];

/// Builds `<xml>…</xml>` from fields, strings in CDATA or escaped plain.
fn doc(fields: &[(&str, &str)], cdata: bool) -> String {
    let mut s = String::from("<xml>");
    for (k, v) in fields {
        if cdata && !NUMERIC.contains(k) {
            s.push_str(&format!("<{k}><![CDATA[{v}]]></{k}>\n"));
        } else {
            s.push_str(&format!("<{k}>{}</{k}>\n", quick_xml::escape::escape(*v)));
        }
    }
    s.push_str("</xml>");
    s
}

fn common<'a>(msg_type: &'a str, rest: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut f = vec![
        ("ToUserName", "gh_abc"),
        ("FromUserName", "o_user"),
        ("CreateTime", "1348831860"),
        ("MsgType", msg_type),
    ];
    f.extend_from_slice(rest);
    f
}

/// Parses the message both with and without CDATA and checks both agree.
fn both(msg_type: &str, rest: &[(&str, &str)]) -> Inbound {
    let fields = common(msg_type, rest);
    let with = parse(&doc(&fields, true)).unwrap();
    let without = parse(&doc(&fields, false)).unwrap();
    assert_eq!(
        with.kind, without.kind,
        "CDATA and plain disagree for {msg_type}"
    );
    assert_eq!(
        (
            with.to_user.as_str(),
            with.from_user.as_str(),
            with.create_time
        ),
        ("gh_abc", "o_user", 1348831860)
    );
    with
}

fn body(msg_type: &str, rest: &[(&str, &str)]) -> MessageBody {
    match both(msg_type, rest).kind {
        InboundKind::Message { msg_id, body } => {
            assert_eq!(msg_id, Some(1234567890123456));
            body
        }
        other => panic!("not a message: {other:?}"),
    }
}

fn event(rest: &[(&str, &str)]) -> Event {
    let inbound = both("event", rest);
    assert!(inbound.is_event());
    match inbound.kind {
        InboundKind::Event(e) => e,
        other => panic!("not an event: {other:?}"),
    }
}

const ID: (&str, &str) = ("MsgId", "1234567890123456");

#[test]
fn message_types() {
    assert_eq!(
        body("text", &[("Content", "this is a test"), ID]),
        MessageBody::Text {
            content: "this is a test".into()
        }
    );
    assert_eq!(
        body(
            "image",
            &[("PicUrl", "http://p/1.jpg"), ("MediaId", "m1"), ID]
        ),
        MessageBody::Image {
            pic_url: "http://p/1.jpg".into(),
            media_id: "m1".into()
        }
    );
    assert_eq!(
        body("voice", &[("MediaId", "m2"), ("Format", "amr"), ID]),
        MessageBody::Voice {
            media_id: "m2".into(),
            format: "amr".into(),
            recognition: None
        }
    );
    assert_eq!(
        body(
            "voice",
            &[
                ("MediaId", "m2"),
                ("Format", "speex"),
                ("Recognition", "腾讯微信团队"),
                ID
            ]
        ),
        MessageBody::Voice {
            media_id: "m2".into(),
            format: "speex".into(),
            recognition: Some("腾讯微信团队".into())
        }
    );
    assert_eq!(
        body("video", &[("MediaId", "m3"), ("ThumbMediaId", "t3"), ID]),
        MessageBody::Video {
            media_id: "m3".into(),
            thumb_media_id: "t3".into()
        }
    );
    assert_eq!(
        body(
            "shortvideo",
            &[("MediaId", "m4"), ("ThumbMediaId", "t4"), ID]
        ),
        MessageBody::ShortVideo {
            media_id: "m4".into(),
            thumb_media_id: "t4".into()
        }
    );
    assert_eq!(
        body(
            "location",
            &[
                ("Location_X", "23.134521"),
                ("Location_Y", "113.358803"),
                ("Scale", "20"),
                ("Label", "位置信息"),
                ID
            ]
        ),
        MessageBody::Location {
            x: 23.134521,
            y: 113.358803,
            scale: 20,
            label: "位置信息".into()
        }
    );
    assert_eq!(
        body(
            "link",
            &[
                ("Title", "公众平台官网链接"),
                ("Description", "d"),
                ("Url", "https://a/?x=1&y=2"),
                ID
            ]
        ),
        MessageBody::Link {
            title: "公众平台官网链接".into(),
            description: "d".into(),
            url: "https://a/?x=1&y=2".into()
        }
    );
    assert_eq!(
        body(
            "miniprogrampage",
            &[
                ("Title", "t"),
                ("AppId", "wxapp"),
                ("PagePath", "pages/i?a=1"),
                ("ThumbUrl", "u"),
                ("ThumbMediaId", "tm"),
                ID
            ]
        ),
        MessageBody::MiniProgramPage {
            title: "t".into(),
            app_id: "wxapp".into(),
            page_path: "pages/i?a=1".into(),
            thumb_url: "u".into(),
            thumb_media_id: "tm".into()
        }
    );
}

#[test]
fn unknown_msg_type_is_kept_with_raw() {
    let m = both("music_new", &[("Foo", "bar"), ID]);
    assert_eq!(
        m.kind,
        InboundKind::Message {
            msg_id: Some(1234567890123456),
            body: MessageBody::Unknown {
                msg_type: "music_new".into()
            }
        }
    );
    assert_eq!(m.msg_type(), "music_new");
    assert_eq!(m.field("Foo").as_deref(), Some("bar"));
}

#[test]
fn message_helpers() {
    let m = both("text", &[("Content", "hi"), ID]);
    assert_eq!(
        (m.msg_type(), m.event_name(), m.text(), m.msg_id()),
        ("text", None, Some("hi"), Some(1234567890123456))
    );
    assert!(!m.is_event());
}

#[test]
fn subscribe_plain_and_via_qr_scene() {
    assert_eq!(
        event(&[("Event", "subscribe")]),
        Event::Subscribe {
            event_key: None,
            scene: None,
            ticket: None
        }
    );
    // Plain subscribe often carries an empty EventKey.
    assert_eq!(
        event(&[("Event", "subscribe"), ("EventKey", "")]),
        Event::Subscribe {
            event_key: None,
            scene: None,
            ticket: None
        }
    );
    assert_eq!(
        event(&[
            ("Event", "subscribe"),
            ("EventKey", "qrscene_123"),
            ("Ticket", "TICKET")
        ]),
        Event::Subscribe {
            event_key: Some("qrscene_123".into()),
            scene: Some("123".into()),
            ticket: Some("TICKET".into())
        }
    );
    assert_eq!(event(&[("Event", "unsubscribe")]), Event::Unsubscribe);
}

#[test]
fn scan_location_click_view() {
    assert_eq!(
        event(&[("Event", "SCAN"), ("EventKey", "123"), ("Ticket", "T")]),
        Event::Scan {
            event_key: "123".into(),
            ticket: Some("T".into())
        }
    );
    assert_eq!(
        event(&[
            ("Event", "LOCATION"),
            ("Latitude", "23.137466"),
            ("Longitude", "113.352425"),
            ("Precision", "119.385040")
        ]),
        Event::Location {
            latitude: 23.137466,
            longitude: 113.352425,
            precision: 119.38504
        }
    );
    assert_eq!(
        event(&[("Event", "CLICK"), ("EventKey", "V1001_TODAY")]),
        Event::Click {
            event_key: "V1001_TODAY".into()
        }
    );
    assert_eq!(
        event(&[
            ("Event", "VIEW"),
            ("EventKey", "https://x/?a=1&b=2"),
            ("MenuId", "208379533")
        ]),
        Event::View {
            url: "https://x/?a=1&b=2".into(),
            menu_id: Some("208379533".into())
        }
    );
}

#[test]
fn event_names_are_case_insensitive() {
    assert_eq!(
        event(&[("Event", "Subscribe")]),
        event(&[("Event", "subscribe")])
    );
    assert_eq!(
        event(&[("Event", "scan"), ("EventKey", "1")]),
        Event::Scan {
            event_key: "1".into(),
            ticket: None
        }
    );
    assert_eq!(
        event(&[("Event", "click"), ("EventKey", "k")]),
        Event::Click {
            event_key: "k".into()
        }
    );
    let e = both(
        "EVENT",
        &[
            ("Event", "Kf_Msg_Or_Event"),
            ("Token", "t"),
            ("OpenKfId", "wk1"),
        ],
    );
    assert_eq!(e.event_name(), Some("kf_msg_or_event"));
}

#[test]
fn job_finish_events_use_msg_id_uppercase() {
    let e = both(
        "event",
        &[
            ("Event", "TEMPLATESENDJOBFINISH"),
            ("MsgID", "200163836"),
            ("Status", "failed:user block"),
        ],
    );
    assert_eq!(
        e.kind,
        InboundKind::Event(Event::TemplateSendJobFinish {
            msg_id: 200163836,
            status: "failed:user block".into()
        })
    );
    assert_eq!(e.msg_id(), Some(200163836));
    assert_eq!(
        event(&[
            ("Event", "MASSSENDJOBFINISH"),
            ("MsgID", "1988"),
            ("Status", "sendsuccess"),
            ("TotalCount", "100"),
            ("FilterCount", "80"),
            ("SentCount", "75"),
            ("ErrorCount", "5"),
        ]),
        Event::MassSendJobFinish {
            msg_id: 1988,
            status: "sendsuccess".into(),
            total_count: 100,
            filter_count: 80,
            sent_count: 75,
            error_count: 5
        }
    );
    let missing = doc(
        &common(
            "event",
            &[("Event", "TEMPLATESENDJOBFINISH"), ("Status", "success")],
        ),
        true,
    );
    assert_eq!(parse(&missing), Err(XmlError::MissingField("MsgID")));
}

#[test]
fn wecom_kf_event_without_from_user() {
    let xml = "<xml><ToUserName><![CDATA[ww12345678910]]></ToUserName><CreateTime>1348831860</CreateTime>\
               <MsgType><![CDATA[event]]></MsgType><Event><![CDATA[kf_msg_or_event]]></Event>\
               <Token><![CDATA[ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR]]></Token>\
               <OpenKfId><![CDATA[wkxxxxxxx]]></OpenKfId></xml>";
    let m = parse(xml).unwrap();
    assert_eq!(m.from_user, "");
    assert_eq!(
        m.kind,
        InboundKind::Event(Event::KfMsgOrEvent {
            token: "ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR".into(),
            open_kf_id: "wkxxxxxxx".into()
        })
    );
}

#[test]
fn unknown_event_is_kept() {
    let e = both("event", &[("Event", "subscribe_msg_popup_event")]);
    assert_eq!(
        e.kind,
        InboundKind::Event(Event::Unknown {
            event: "subscribe_msg_popup_event".into()
        })
    );
    assert_eq!(e.event_name(), Some("subscribe_msg_popup_event"));
    assert_eq!(e.msg_id(), None);
}

#[test]
fn nested_elements_are_flattened_by_path() {
    let xml = "<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime>\
               <MsgType>event</MsgType><Event>pic_sysphoto</Event><EventKey>6</EventKey>\
               <SendPicsInfo><Count>1</Count><PicList><item><PicMd5Sum><![CDATA[1b5f7c23]]></PicMd5Sum></item>\
               <item><PicMd5Sum>second</PicMd5Sum></item></PicList></SendPicsInfo></xml>";
    let m = parse(xml).unwrap();
    assert_eq!(m.field("SendPicsInfo/Count").as_deref(), Some("1"));
    assert_eq!(
        m.field("SendPicsInfo/PicList/item/PicMd5Sum").as_deref(),
        Some("1b5f7c23")
    );
    assert_eq!(m.field("SendPicsInfo"), None);
}

#[test]
fn hostile_user_text_survives() {
    for (content, cdata) in [
        ("emoji 😀👍🏽 中文", true),
        ("emoji 😀👍🏽 中文", false),
        ("ctrl \u{2} and \u{1d} inside", true),
        ("ctrl \u{2} and \u{1d} inside", false),
        ("<xml><a>not a tag</a></xml>", true),
        ("<xml><a>escaped tag</a></xml> & more", false),
        ("<!DOCTYPE html> is just text here", true),
        ("&lt; literal entity text", true),
        ("  spaces kept  ", false),
        ("  spaces kept  ", true),
    ] {
        let m = parse(&doc(&common("text", &[("Content", content)]), cdata)).unwrap();
        assert_eq!(m.text(), Some(content), "cdata={cdata}");
    }
    let escaped = "<xml><ToUserName>a</ToUserName><CreateTime>1</CreateTime><MsgType>text</MsgType>\
                   <Content>a &lt;b&gt; &amp; &quot;c&quot; &#x4F60;&#22909;</Content></xml>";
    assert_eq!(parse(escaped).unwrap().text(), Some("a <b> & \"c\" 你好"));
}

#[test]
fn formatting_whitespace_around_cdata_is_dropped() {
    let xml = "<xml>\n  <ToUserName>\n    <![CDATA[gh]]>\n  </ToUserName>\n  <CreateTime> 12 </CreateTime>\n  <MsgType><![CDATA[text]]></MsgType>\n  <Content><![CDATA[a]]><![CDATA[b]]></Content>\n</xml>";
    let m = parse(xml).unwrap();
    assert_eq!(
        (m.to_user.as_str(), m.create_time, m.text()),
        ("gh", 12, Some("ab"))
    );
}

#[test]
fn doctype_billion_laughs_and_xxe_are_rejected() {
    let laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><xml><Content>&lol2;</Content></xml>"#;
    let xxe = r#"<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><ToUserName>&xxe;</ToUserName></xml>"#;
    let plain = "<!DOCTYPE xml><xml><Encrypt>x</Encrypt></xml>";
    let lower = "<!doctype xml><xml><Encrypt>x</Encrypt></xml>";
    let bare_entity = r#"<!ENTITY e "x"><xml><Encrypt>&e;</Encrypt></xml>"#;
    let inner_entity = r#"<xml><!ENTITY e "x"><Encrypt>x</Encrypt></xml>"#;
    for bad in [laughs, xxe, plain, lower, bare_entity, inner_entity] {
        assert_eq!(parse(bad), Err(XmlError::Doctype), "{bad}");
        assert_eq!(parse_envelope(bad), Err(XmlError::Doctype), "{bad}");
    }
}

#[test]
fn undefined_entity_without_dtd_is_malformed() {
    let xml = "<xml><Encrypt>&xxe;</Encrypt></xml>";
    assert!(matches!(parse_envelope(xml), Err(XmlError::Malformed(_))));
}

#[test]
fn malformed_documents() {
    for bad in [
        "",
        "   ",
        "success",
        r#"{"ToUserName":"gh"}"#,
        "<xml><Content>x</xml>",
        "<xml><Content>x</Content>",
        "<xml></xml><xml></xml>",
        "<xml></xml>trailing",
        "<xml><Content><![CDATA[unterminated</Content></xml>",
        "<xml><A>&#0;</A></xml>",
    ] {
        assert!(
            matches!(parse_fields(bad), Err(XmlError::Malformed(_))),
            "{bad:?} -> {:?}",
            parse_fields(bad)
        );
    }
}

#[test]
fn missing_and_invalid_fields() {
    let no_type = "<xml><ToUserName>a</ToUserName><CreateTime>1</CreateTime></xml>";
    assert_eq!(parse(no_type), Err(XmlError::MissingField("MsgType")));
    let no_to = "<xml><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>x</Content></xml>";
    assert_eq!(parse(no_to), Err(XmlError::MissingField("ToUserName")));
    let no_time =
        "<xml><ToUserName>a</ToUserName><MsgType>text</MsgType><Content>x</Content></xml>";
    assert_eq!(parse(no_time), Err(XmlError::MissingField("CreateTime")));
    let no_content =
        "<xml><ToUserName>a</ToUserName><CreateTime>1</CreateTime><MsgType>text</MsgType></xml>";
    assert_eq!(parse(no_content), Err(XmlError::MissingField("Content")));
    let bad_time = "<xml><ToUserName>a</ToUserName><CreateTime>soon</CreateTime><MsgType>text</MsgType><Content>x</Content></xml>";
    assert_eq!(parse(bad_time), Err(XmlError::InvalidNumber("CreateTime")));
    let bad_lat = doc(
        &common(
            "event",
            &[
                ("Event", "LOCATION"),
                ("Latitude", "north"),
                ("Longitude", "1"),
                ("Precision", "1"),
            ],
        ),
        false,
    );
    assert_eq!(parse(&bad_lat), Err(XmlError::InvalidNumber("Latitude")));
    let nan_lat = doc(
        &common(
            "event",
            &[
                ("Event", "LOCATION"),
                ("Latitude", "NaN"),
                ("Longitude", "1"),
                ("Precision", "1"),
            ],
        ),
        false,
    );
    assert_eq!(parse(&nan_lat), Err(XmlError::InvalidNumber("Latitude")));
    let no_event = doc(&common("event", &[]), true);
    assert_eq!(parse(&no_event), Err(XmlError::MissingField("Event")));
}

#[test]
fn msg_id_above_i64_max_keeps_its_bits() {
    let m = parse(&doc(
        &common(
            "text",
            &[("Content", "x"), ("MsgId", "18446744073709551615")],
        ),
        true,
    ))
    .unwrap();
    assert_eq!(m.msg_id(), Some(-1));
    let bad = doc(
        &common("text", &[("Content", "x"), ("MsgId", "12ab")]),
        true,
    );
    assert_eq!(parse(&bad), Err(XmlError::InvalidNumber("MsgId")));
}

#[test]
fn envelopes() {
    let safe = "<xml><ToUserName><![CDATA[gh_b629c48b653e]]></ToUserName><Encrypt><![CDATA[abc+/=]]></Encrypt></xml>";
    assert_eq!(
        parse_envelope(safe).unwrap(),
        Envelope {
            to_user: Some("gh_b629c48b653e".into()),
            encrypt: "abc+/=".into(),
            agent_id: None
        }
    );
    let wecom =
        "<xml><ToUserName>ww1</ToUserName><AgentID>1000002</AgentID><Encrypt>e</Encrypt></xml>";
    assert_eq!(
        parse_envelope(wecom).unwrap().agent_id.as_deref(),
        Some("1000002")
    );
    let compat = doc(
        &common("text", &[("Content", "hi"), ID, ("Encrypt", "zz")]),
        true,
    );
    assert_eq!(parse_envelope(&compat).unwrap().encrypt, "zz");
    assert_eq!(
        parse_envelope("<xml><ToUserName>a</ToUserName></xml>"),
        Err(XmlError::MissingField("Encrypt"))
    );
    assert_eq!(
        parse_envelope("<xml><Encrypt><![CDATA[]]></Encrypt></xml>"),
        Err(XmlError::MissingField("Encrypt"))
    );
    assert_eq!(
        parse_envelope("<xml><Encrypt/></xml>"),
        Err(XmlError::MissingField("Encrypt"))
    );
}

proptest! {
    #[test]
    fn parsers_never_panic_on_strings(s in any::<String>()) {
        let _ = parse(&s);
        let _ = parse_envelope(&s);
    }

    #[test]
    fn parsers_never_panic_on_xmlish(s in r#"(<xml>|</xml>|<[A-Za-z]{1,3}>|</[A-Za-z]{1,3}>|<!\[CDATA\[|\]\]>|&[a-z#0-9]{0,4};?|<!DOCTYPE|<!ENTITY|<\?|\?>|<!--|-->|[a-z0-9 ]{0,3}|\u{2})*"#) {
        let _ = parse(&s);
        let _ = parse_envelope(&s);
    }

    #[test]
    fn escaped_text_content_round_trips(content in any::<String>()) {
        let xml = doc(&common("text", &[("Content", &content)]), false);
        let m = parse(&xml).unwrap();
        prop_assert_eq!(m.text(), Some(content.as_str()));
    }
}
