//! WeCom Customer Service (微信客服) message pull: `kf/sync_msg`.

use serde::{Deserialize, Serialize};

use super::{ApiClient, ApiError};

/// The request of one `sync_msg` page.
#[derive(Debug, Serialize)]
pub struct SyncMsgRequest<'a> {
    pub cursor: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<&'a str>,
    pub limit: u32,
    pub voice_format: u8,
    pub open_kfid: &'a str,
}

/// One page of pulled messages.
#[derive(Debug, Deserialize)]
pub struct SyncMsgPage {
    #[serde(default)]
    pub next_cursor: String,
    #[serde(default)]
    pub has_more: i64,
    #[serde(default)]
    pub msg_list: Vec<serde_json::Value>,
}

impl ApiClient {
    /// Pulls one page after `cursor` ("" from the start of what WeChat keeps).
    pub async fn kf_sync_msg(
        &self,
        open_kfid: &str,
        cursor: &str,
        token: Option<&str>,
    ) -> Result<SyncMsgPage, ApiError> {
        self.post_json(
            "kf/sync_msg",
            &SyncMsgRequest {
                cursor,
                token,
                limit: 1000,
                voice_format: 0,
                open_kfid,
            },
        )
        .await
    }
}
