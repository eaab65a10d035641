//! Endpoint logic of the fake. Runs under the state lock, after recording and faults.

use serde_json::{Value, json};

use super::{
    ERR_INVALID_OPEN_KFID, Namespace, Recorded, Reply, State, StoredMedia, TokenStatus, err,
    multipart,
};

const CUSTOM_MSGTYPES: &[&str] = &[
    "text",
    "image",
    "voice",
    "video",
    "music",
    "news",
    "mpnews",
    "mpnewsarticle",
    "msgmenu",
    "wxcard",
    "miniprogrampage",
];

const KF_MSGTYPES: &[&str] = &[
    "text",
    "image",
    "voice",
    "video",
    "file",
    "link",
    "miniprogram",
    "msgmenu",
    "location",
    "ca_link",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    Any,
    Get,
    Post,
}

#[derive(Clone, Copy)]
enum Ep {
    Token,
    StableToken,
    GetToken,
    CustomSend,
    CustomTyping,
    TemplateSend,
    MediaUpload,
    MediaGet,
    KfSyncMsg,
    KfSendMsg,
    KfStateGet,
    KfStateTrans,
    UserInfo,
    KfCustomers,
}

impl Ep {
    fn parse(endpoint: &str) -> Option<Ep> {
        Some(match endpoint {
            "token" => Ep::Token,
            "stable_token" => Ep::StableToken,
            "gettoken" => Ep::GetToken,
            "message/custom/send" => Ep::CustomSend,
            "message/custom/typing" => Ep::CustomTyping,
            "message/template/send" => Ep::TemplateSend,
            "media/upload" => Ep::MediaUpload,
            "media/get" => Ep::MediaGet,
            "kf/sync_msg" => Ep::KfSyncMsg,
            "kf/send_msg" => Ep::KfSendMsg,
            "kf/service_state/get" => Ep::KfStateGet,
            "kf/service_state/trans" => Ep::KfStateTrans,
            "user/info" => Ep::UserInfo,
            "kf/customer/batchget" => Ep::KfCustomers,
            _ => return None,
        })
    }

    fn method(self) -> Method {
        match self {
            Ep::Token | Ep::GetToken => Method::Any,
            Ep::MediaGet | Ep::UserInfo => Method::Get,
            _ => Method::Post,
        }
    }

    /// Whether the body must be a JSON object.
    fn json_body(self) -> bool {
        !matches!(
            self,
            Ep::Token | Ep::GetToken | Ep::MediaUpload | Ep::MediaGet | Ep::UserInfo
        )
    }

    fn needs_access_token(self) -> bool {
        !matches!(self, Ep::Token | Ep::StableToken | Ep::GetToken)
    }
}

pub(super) fn dispatch(st: &mut State, rec: &Recorded, content_type: &str) -> Reply {
    let Some(ep) = Ep::parse(&rec.endpoint) else {
        return err(-1, "fake: unknown endpoint");
    };
    if ep.needs_access_token()
        && let Some(reply) = check_access_token(st, rec)
    {
        return reply;
    }
    match (ep.method(), rec.method.as_str()) {
        (Method::Post, m) if m != "POST" => return err(43002, "require POST method"),
        (Method::Get, m) if m != "GET" => return err(43001, "require GET method"),
        _ => {}
    }
    let empty = serde_json::Map::new();
    let body = if ep.json_body() {
        if rec.body.is_empty() {
            return err(44002, "empty post data");
        }
        match &rec.json {
            Some(Value::Object(map)) => map,
            _ => return err(47001, "data format error"),
        }
    } else {
        &empty
    };
    let s = |key: &str| {
        body.get(key)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    let q = |key: &str| rec.query.get(key).map(String::as_str);

    match ep {
        Ep::Token => {
            if q("grant_type") != Some("client_credential") {
                return err(40002, "invalid grant_type");
            }
            let appid = match check_app_args(q("appid"), q("secret"), "appid", "appsecret") {
                Ok(appid) => appid,
                Err(reply) => return reply,
            };
            let token = st.rotate(Namespace::Token, appid);
            Reply::Json(json!({"access_token": token, "expires_in": 7200}))
        }
        Ep::StableToken => {
            if s("grant_type") != Some("client_credential") {
                return err(40002, "invalid grant_type");
            }
            let appid = match check_app_args(
                body.get("appid").and_then(Value::as_str),
                s("secret"),
                "appid",
                "appsecret",
            ) {
                Ok(appid) => appid,
                Err(reply) => return reply,
            };
            let force = body
                .get("force_refresh")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let current = st
                .latest_stable
                .get(appid)
                .filter(|t| st.token_status(t) == Some(TokenStatus::Valid))
                .cloned();
            let token = match current {
                Some(token) if !force => token,
                _ => st.rotate(Namespace::Stable, appid),
            };
            Reply::Json(json!({"access_token": token, "expires_in": 7200}))
        }
        Ep::GetToken => {
            if let Err(reply) = check_app_args(q("corpid"), q("corpsecret"), "corpid", "corpsecret")
            {
                return reply;
            }
            let token = st.issue_token("CORP");
            Reply::Json(
                json!({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200}),
            )
        }
        Ep::CustomSend => {
            if s("touser").is_none() {
                return err(40003, "invalid openid");
            }
            match s("msgtype") {
                Some(t) if CUSTOM_MSGTYPES.contains(&t) => ok(),
                _ => err(40008, "invalid message type"),
            }
        }
        Ep::CustomTyping => {
            if s("touser").is_none() {
                return err(40003, "invalid openid");
            }
            match s("command") {
                Some("Typing" | "CancelTyping") => ok(),
                _ => err(
                    47001,
                    "data format error: command must be Typing or CancelTyping",
                ),
            }
        }
        Ep::TemplateSend => {
            if s("touser").is_none() {
                return err(40003, "invalid openid");
            }
            if s("template_id").is_none() {
                return err(40037, "invalid template_id");
            }
            st.template_msgid += 1;
            Reply::Json(json!({"errcode": 0, "errmsg": "ok", "msgid": st.template_msgid}))
        }
        Ep::MediaUpload => media_upload(st, rec, content_type),
        Ep::MediaGet => {
            let Some(media) = q("media_id").and_then(|id| st.media.get(id)) else {
                return err(40007, "invalid media_id");
            };
            Reply::Bytes {
                content_type: media.content_type.clone(),
                filename: media.filename.clone(),
                bytes: media.bytes.clone(),
            }
        }
        Ep::UserInfo => {
            let Some(openid) = q("openid").filter(|o| !o.is_empty()) else {
                return err(40003, "invalid openid");
            };
            let mut answer = json!({"subscribe": 1, "openid": openid, "language": "zh_CN"});
            if let Some((Some(u), _)) = st.users.get(openid) {
                answer["unionid"] = json!(u);
            }
            Reply::Json(answer)
        }
        Ep::KfCustomers => {
            let Some(list) = body.get("external_userid_list").and_then(Value::as_array) else {
                return err(40096, "invalid external userid");
            };
            let (mut found, mut invalid) = (Vec::new(), Vec::new());
            for id in list.iter().filter_map(Value::as_str) {
                match st.users.get(id) {
                    Some((unionid, nickname)) => {
                        let mut c = json!({"external_userid": id, "nickname": nickname.clone().unwrap_or_default(), "avatar": "", "gender": 0});
                        if let Some(u) = unionid {
                            c["unionid"] = json!(u);
                        }
                        found.push(c);
                    }
                    None => invalid.push(json!(id)),
                }
            }
            Reply::Json(
                json!({"errcode": 0, "errmsg": "ok", "customer_list": found, "invalid_external_userid": invalid}),
            )
        }
        Ep::KfSyncMsg => {
            let Some(open_kfid) = s("open_kfid") else {
                return err(ERR_INVALID_OPEN_KFID, "invalid open_kfid");
            };
            let start = match body.get("cursor") {
                None | Some(Value::Null) => 0,
                Some(Value::String(c)) if c.is_empty() => 0,
                Some(Value::String(c)) => match c.parse::<usize>() {
                    Ok(n) => n,
                    Err(_) => return err(40058, "invalid cursor"),
                },
                Some(_) => return err(40058, "invalid cursor"),
            };
            let limit = match body.get("limit").and_then(Value::as_u64) {
                None | Some(0) => 1000,
                Some(n) => n.min(1000) as usize,
            };
            let page = limit.min(st.kf_page_size.max(1));
            let all = st
                .kf_messages
                .get(open_kfid)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let start = start.min(all.len());
            let end = (start + page).min(all.len());
            let has_more = i64::from(end < all.len());
            Reply::Json(json!({
                "errcode": 0,
                "errmsg": "ok",
                "next_cursor": end.to_string(),
                "has_more": has_more,
                "msg_list": all[start..end].to_vec(),
            }))
        }
        Ep::KfSendMsg => {
            if s("touser").is_none() {
                return err(40096, "invalid external userid");
            }
            if s("open_kfid").is_none() {
                return err(ERR_INVALID_OPEN_KFID, "invalid open_kfid");
            }
            match s("msgtype") {
                Some(t) if KF_MSGTYPES.contains(&t) => {}
                _ => return err(40008, "invalid message type"),
            }
            let msgid = match s("msgid") {
                Some(id) => id.to_owned(),
                None => format!("fake_kf_send_{}", st.next_seq()),
            };
            Reply::Json(json!({"errcode": 0, "errmsg": "ok", "msgid": msgid}))
        }
        Ep::KfStateGet | Ep::KfStateTrans => {
            let Some(open_kfid) = s("open_kfid") else {
                return err(ERR_INVALID_OPEN_KFID, "invalid open_kfid");
            };
            let Some(user) = s("external_userid") else {
                return err(40096, "invalid external userid");
            };
            let key = (open_kfid.to_owned(), user.to_owned());
            if let Ep::KfStateGet = ep {
                let (state, servicer) = st
                    .kf_service_state
                    .get(&key)
                    .cloned()
                    .unwrap_or((1, String::new()));
                return Reply::Json(
                    json!({"errcode": 0, "errmsg": "ok", "service_state": state, "servicer_userid": servicer}),
                );
            }
            let Some(state) = body
                .get("service_state")
                .and_then(Value::as_i64)
                .filter(|n| (0..=4).contains(n))
            else {
                return err(95016, "invalid service_state");
            };
            let servicer = s("servicer_userid").unwrap_or("").to_owned();
            st.kf_service_state.insert(key, (state, servicer));
            let msg_code = format!("fake_msg_code_{}", st.next_seq());
            Reply::Json(json!({"errcode": 0, "errmsg": "ok", "msg_code": msg_code}))
        }
    }
}

fn ok() -> Reply {
    err(0, "ok")
}

/// appid/secret (or corpid/corpsecret) presence checks; any secret is accepted.
fn check_app_args<'a>(
    id: Option<&'a str>,
    secret: Option<&str>,
    id_name: &str,
    secret_name: &str,
) -> Result<&'a str, Reply> {
    let id = match id {
        None => return Err(err(41002, &format!("{id_name} missing"))),
        Some("") => return Err(err(40013, &format!("invalid {id_name}"))),
        Some(id) => id,
    };
    match secret {
        None => Err(err(41004, &format!("{secret_name} missing"))),
        Some("") => Err(err(40125, &format!("invalid {secret_name}"))),
        Some(_) => Ok(id),
    }
}

fn check_access_token(st: &State, rec: &Recorded) -> Option<Reply> {
    let token = match rec.query.get("access_token").map(String::as_str) {
        None | Some("") => return Some(err(41001, "access_token missing")),
        Some(token) => token,
    };
    match st.token_status(token) {
        Some(TokenStatus::Valid) => None,
        Some(TokenStatus::Expired) => Some(err(42001, "access_token expired")),
        Some(TokenStatus::Rotated) | None => Some(err(
            40001,
            "invalid credential, access_token is invalid or not latest",
        )),
    }
}

fn media_upload(st: &mut State, rec: &Recorded, content_type: &str) -> Reply {
    let kind = rec.query.get("type").map(String::as_str).unwrap_or("");
    let (max, size_err, default_ct) = match kind {
        "image" => (10 << 20, 40009, "image/jpeg"),
        "voice" => (2 << 20, 40010, "audio/amr"),
        "video" => (10 << 20, 40011, "video/mp4"),
        "thumb" => (64 << 10, 40012, "image/jpeg"),
        // WeCom also accepts plain files.
        "file" => (20 << 20, 40006, "application/octet-stream"),
        _ => return err(40004, "invalid media type"),
    };
    let Some(part) = multipart::parse(content_type, &rec.body)
        .and_then(|parts| parts.into_iter().find(|p| p.name == "media"))
    else {
        return err(41005, "media data missing");
    };
    if part.data.is_empty() || part.data.len() > max {
        return err(size_err, "invalid media file size");
    }
    let media_id = format!(
        "fake_media_{}_{}",
        st.next_seq(),
        uuid::Uuid::new_v4().simple()
    );
    let part_ct = part
        .content_type
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| default_ct.to_owned());
    let filename = part
        .filename
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| format!("{media_id}.bin"));
    st.media.insert(
        media_id.clone(),
        StoredMedia {
            content_type: part_ct,
            filename,
            bytes: part.data.clone(),
        },
    );
    st.uploaded
        .push((media_id.clone(), kind.to_owned(), part.data));
    let created_at = chrono::Utc::now().timestamp();
    let mut reply = json!({"type": kind, "media_id": media_id, "created_at": created_at});
    if kind == "thumb" {
        // The real OA API names it thumb_media_id for thumbs.
        reply["thumb_media_id"] = json!(media_id);
    }
    Reply::Json(reply)
}
