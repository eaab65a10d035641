//! Why a message was not sent, in words an agent understands: Chinese, then
//! English. Codes from PROTOCOL.md §3.2/§3.6, the OA global return codes and
//! WeCom's kf error codes (95xxx; 95017 is not pinned to a primary source,
//! so it gets the generic sentence).

use super::error::ApiError;

impl ApiError {
    /// One or two sentences for the console: what happened and what (if
    /// anything) the agent can do, Chinese first, then English.
    pub fn agent_reason(&self) -> String {
        match self {
            ApiError::WeChat { code, message } => match code_reason(*code) {
                Some((zh, en)) => format!("{zh}{en}"),
                None => generic(*code, message),
            },
            ApiError::Timeout => "微信服务器未及时响应，系统会稍后自动重试。\
                 WeChat did not answer in time; Kefu will retry shortly."
                .into(),
            ApiError::Transport(_) => "暂时无法连接微信服务器，系统会稍后自动重试。\
                 Kefu cannot reach WeChat's servers right now; it will retry shortly."
                .into(),
            ApiError::Http(s) if *s >= 500 || *s == 429 => format!(
                "微信服务器暂时出错（HTTP {s}），系统会稍后自动重试。\
                 WeChat's servers answered with an error (HTTP {s}); Kefu will retry shortly."
            ),
            ApiError::Http(s) => format!(
                "微信服务器拒绝了请求（HTTP {s}），消息未发送，请联系管理员。\
                 WeChat's servers refused the request (HTTP {s}); the message was not sent. Ask an administrator."
            ),
            ApiError::Decode(_) => "微信返回了无法识别的结果，消息可能未发送，请联系管理员。\
                 WeChat answered in an unexpected way; the message may not have been sent. Ask an administrator."
                .into(),
            ApiError::Unsupported(what) => format!(
                "此类消息不能通过该渠道发送，消息未发送。\
                 This kind of message cannot be sent on this channel ({what}); the message was not sent."
            ),
            ApiError::TokenStore(_) => "暂时无法取得微信接口凭证，系统会稍后自动重试。\
                 Kefu cannot get a WeChat access token right now; it will retry shortly."
                .into(),
        }
    }
}

/// The sentence for a known `errcode`.
fn code_reason(code: i64) -> Option<(&'static str, &'static str)> {
    Some(match code {
        -1 => (
            "微信系统繁忙，系统会稍后自动重试。",
            "WeChat is busy; Kefu will retry shortly.",
        ),
        45011 => (
            "微信接口调用过于频繁，系统会稍后自动重试。",
            "WeChat is limiting how fast Kefu may call it; Kefu will retry shortly.",
        ),
        45015 => (
            "客户已超过 48 小时未发消息，微信不允许继续发送，需等客户再次发消息。",
            "The customer has not written for 48 hours; WeChat allows no more messages until they do.",
        ),
        45047 => (
            "给该客户的消息条数已达上限（客户每次发消息后最多可回复 5 条），需等客户再次发消息。",
            "The number of messages WeChat allows after the customer's last message is used up; wait until they write again.",
        ),
        43004 => (
            "客户已取消关注公众号，微信不允许再给他发消息。",
            "The customer no longer follows the Official Account, so WeChat refuses messages to them.",
        ),
        43019 => (
            "客户已将公众号拉黑，无法给他发消息。",
            "The customer has blocked the Official Account; messages cannot reach them.",
        ),
        40003 => (
            "客户的微信 ID（OpenID）对本账号无效，消息未发送。",
            "The customer's WeChat id (OpenID) is not valid for this account; the message was not sent.",
        ),
        45009 => (
            "本账号今天的微信接口调用次数已用完，明天恢复，或由管理员在微信后台清零。",
            "The account has used up today's WeChat API quota; sending resumes tomorrow, or an administrator can reset the quota.",
        ),
        48001 => (
            "账号没有这个微信接口的权限（未认证或未开通该功能），请联系管理员。",
            "The account has no permission for this WeChat API (not verified, or the feature is not enabled); ask an administrator.",
        ),
        40001 | 40014 | 42001 => (
            "微信不接受 Kefu 的接口凭证，已重试仍失败（请管理员检查 AppSecret 和 IP 白名单），系统会稍后再试。",
            "WeChat rejected Kefu's access token even after a refresh (an administrator should check the secret and the IP whitelist); Kefu will try again later.",
        ),
        40013 | 40125 | 41004 => (
            "账号的 AppID 或 Secret 配置有误，请联系管理员。",
            "The account's AppID or secret is misconfigured; ask an administrator.",
        ),
        40164 | 61004 => (
            "Kefu 服务器的 IP 不在微信后台的 IP 白名单中，请联系管理员。",
            "Kefu's server IP is not on the account's IP whitelist in the WeChat console; ask an administrator.",
        ),
        89503 => (
            "微信要求管理员确认本次接口调用，请联系管理员在微信后台处理。",
            "WeChat wants an administrator to approve this server's calls; ask an administrator.",
        ),
        40007 => (
            "图片、语音或视频素材已失效（微信只保留 3 天），请重新上传后再发送。",
            "The picture, voice or video is no longer on WeChat (it keeps uploads for 3 days); upload it again.",
        ),
        45002 => (
            "消息内容太长，微信不接受，请缩短后再发送。",
            "The message is too long for WeChat; shorten it and send again.",
        ),
        40008 | 47001 | 44002 => (
            "微信不接受这条消息的格式，消息未发送，请联系管理员。",
            "WeChat did not accept the format of this message; it was not sent. Ask an administrator.",
        ),
        40037 => (
            "模板消息的模板 ID 无效，请联系管理员检查模板配置。",
            "The template id of this template message is not valid; ask an administrator to check the template.",
        ),
        43101 => (
            "客户未同意接收这条订阅消息。",
            "The customer has not agreed to receive this subscription message.",
        ),
        95000 | 95004 => (
            "微信客服账号 ID（open_kfid）无效或不存在，请联系管理员。",
            "The WeCom customer-service account id (open_kfid) is invalid or does not exist; ask an administrator.",
        ),
        95001 => (
            "给该客户的消息条数已达上限（客户每次发消息后最多可发 5 条），需等客户再次发消息。",
            "WeCom allows at most 5 messages after the customer's last message, and they are used up; wait until the customer writes again.",
        ),
        95002 => (
            "客户已超过 48 小时未发消息，微信客服不允许继续发送，需等客户再次发消息。",
            "The customer has not written for 48 hours; WeCom allows no more messages until they do.",
        ),
        95007 => (
            "拉取客户消息的凭证已失效（只有 10 分钟有效），系统会在下次通知时重新拉取。",
            "The token for pulling the customer's messages has expired (it lasts 10 minutes); Kefu pulls again at the next notification.",
        ),
        95013 => (
            "该会话已经结束，需等客户再次发消息。",
            "This WeCom session has ended; wait until the customer writes again.",
        ),
        95016 => (
            "微信客服不允许这样变更会话状态。",
            "WeCom does not allow this change of the session's state.",
        ),
        95018 => (
            "该会话当前不允许由 Kefu 回复（可能已转给企业微信的接待人员或已结束），消息未发送。",
            "The WeCom session is not in a state where Kefu may reply (it was handed to a WeCom servicer or has ended); the message was not sent.",
        ),
        _ => return None,
    })
}

/// Any other code: say that WeChat refused and which code it gave.
fn generic(code: i64, message: &str) -> String {
    let message: String = message.chars().take(80).collect();
    format!(
        "微信拒绝了这条消息（错误码 {code}），消息未发送。\
         WeChat refused the message with error {code} ({message}); it was not sent."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wechat(code: i64) -> ApiError {
        ApiError::WeChat {
            code,
            message: "fake".into(),
        }
    }

    #[test]
    fn the_48_hour_window_is_explained() {
        assert_eq!(
            wechat(45015).agent_reason(),
            "客户已超过 48 小时未发消息，微信不允许继续发送，需等客户再次发消息。\
             The customer has not written for 48 hours; WeChat allows no more messages until they do."
        );
    }

    #[test]
    fn every_listed_code_has_its_own_bilingual_sentence() {
        let codes = [
            45015, 45047, 43004, 40003, 45009, 48001, 45011, -1, 95001, 95002, 95007, 95013, 95016,
            95018,
        ];
        let mut seen = std::collections::HashSet::new();
        for code in codes {
            let r = wechat(code).agent_reason();
            assert!(code_reason(code).is_some(), "{code} has no sentence");
            assert!(
                r.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
                "{code}: no Chinese in {r}"
            );
            assert!(
                r.contains(". ") || r.ends_with('.'),
                "{code}: no English in {r}"
            );
            assert!(seen.insert(r), "{code} shares its sentence");
        }
    }

    #[test]
    fn unknown_codes_name_the_code() {
        let r = wechat(95017).agent_reason();
        assert!(r.contains("95017"), "{r}");
        assert!(r.contains("错误码") && r.contains("error 95017"));
    }

    #[test]
    fn transport_failures_say_kefu_retries() {
        for e in [
            ApiError::Timeout,
            ApiError::Transport("connection reset".into()),
            ApiError::Http(503),
            ApiError::TokenStore("redis down".into()),
        ] {
            let r = e.agent_reason();
            assert!(r.contains("自动重试") && r.contains("retry"), "{r}");
        }
        assert!(!ApiError::Http(404).agent_reason().contains("retry shortly"));
    }

    #[test]
    fn internal_detail_stays_out_of_the_reason() {
        // Transport details (hosts, ports) are for logs, not agents.
        let r = ApiError::Transport("tcp connect 10.0.0.1:443 refused".into()).agent_reason();
        assert!(!r.contains("10.0.0.1"));
    }
}
