//! What instances of a cluster share through Redis besides the event bus
//! (`crate::bus`): today, the WeChat access tokens.

pub mod redis_tokens;

use std::sync::Arc;

use crate::config::RedisSettings;
use crate::wechat::api::{MemoryTokenStore, TokenStore};

pub use redis_tokens::{RedisTokenStore, RedisTokenStoreError};

/// The access-token store for this deployment: Redis when configured (every
/// instance shares one token per account), memory otherwise (single node).
pub async fn token_store(
    redis: &RedisSettings,
) -> Result<Arc<dyn TokenStore>, RedisTokenStoreError> {
    if redis.enabled() {
        let store = RedisTokenStore::connect(redis.url.expose(), redis.prefix()).await?;
        Ok(Arc::new(store))
    } else {
        Ok(Arc::new(MemoryTokenStore::new()))
    }
}
