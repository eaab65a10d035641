//! Who a customer is, as WeChat knows them: the unionid (the same person
//! across every account bound to one WeChat Open Platform account) and,
//! from WeCom, the nickname.

use serde::{Deserialize, Serialize};

use super::client::{ApiClient, ApiFamily};
use super::error::ApiError;

/// What WeChat tells about one customer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerInfo {
    /// Absent when the account is not bound to an Open Platform account
    /// (or, for an OA, when the user no longer follows it).
    pub unionid: Option<String>,
    pub nickname: Option<String>,
}

#[derive(Deserialize)]
struct UserInfoAnswer {
    #[serde(default)]
    unionid: Option<String>,
}

#[derive(Serialize)]
struct BatchGetRequest<'a> {
    external_userid_list: [&'a str; 1],
    need_enter_session_context: u8,
}

#[derive(Deserialize)]
struct BatchGetAnswer {
    #[serde(default)]
    customer_list: Vec<KfCustomer>,
}

#[derive(Deserialize)]
struct KfCustomer {
    external_userid: String,
    #[serde(default)]
    nickname: Option<String>,
    #[serde(default)]
    unionid: Option<String>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

impl ApiClient {
    /// `GET /cgi-bin/user/info`: the follower's unionid (WeChat no longer
    /// gives nicknames here).
    pub async fn oa_user_info(&self, openid: &str) -> Result<CustomerInfo, ApiError> {
        self.require(ApiFamily::OfficialAccount, "user/info")?;
        let answer: UserInfoAnswer = self
            .call_json(reqwest::Method::GET, "user/info", |rb| {
                rb.query(&[("openid", openid), ("lang", "zh_CN")])
            })
            .await?;
        Ok(CustomerInfo {
            unionid: non_empty(answer.unionid),
            nickname: None,
        })
    }

    /// `POST /cgi-bin/kf/customer/batchget` for one external user; `None`
    /// when WeCom does not know them (listed as invalid).
    pub async fn kf_customer(
        &self,
        external_userid: &str,
    ) -> Result<Option<CustomerInfo>, ApiError> {
        self.require(ApiFamily::WeCom, "kf/customer/batchget")?;
        let answer: BatchGetAnswer = self
            .post_json(
                "kf/customer/batchget",
                &BatchGetRequest {
                    external_userid_list: [external_userid],
                    need_enter_session_context: 0,
                },
            )
            .await?;
        Ok(answer
            .customer_list
            .into_iter()
            .find(|c| c.external_userid == external_userid)
            .map(|c| CustomerInfo {
                unionid: non_empty(c.unionid),
                nickname: non_empty(c.nickname),
            }))
    }
}
