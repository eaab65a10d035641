//! Channel identities of customers: followers of an Official Account, WeCom
//! external users. An identity belongs to exactly one customer.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set, TransactionTrait};

use super::entities::{customer_identities as ids, customers};
use super::{Store, StoreError};
use crate::ids::{AccountId, CustomerId};

/// The kind of a channel identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityKind {
    /// An Official Account openid (scoped to the account).
    OaOpenId,
    /// A WeCom external_userid (scoped to the corp account).
    WecomExternalUserId,
    /// A WeChat unionid (not scoped).
    UnionId,
    /// A web visitor id (scoped to the site).
    WebVisitor,
}

impl IdentityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::OaOpenId => "oa_openid",
            IdentityKind::WecomExternalUserId => "wecom_external_userid",
            IdentityKind::UnionId => "unionid",
            IdentityKind::WebVisitor => "web_visitor",
        }
    }
}

/// A follower's state as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Follower {
    pub customer: CustomerId,
    pub subscribed: Option<bool>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub location_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Finds the identity, creating it and a new customer if unknown.
    pub async fn identity(
        &self,
        kind: IdentityKind,
        account: &AccountId,
        value: &str,
    ) -> Result<ids::Model, StoreError> {
        if let Some(found) = self.find_identity(kind, account, value).await? {
            return Ok(found);
        }
        let now = Utc::now();
        let txn = self.writer().begin().await?;
        let customer = customers::ActiveModel {
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        let created = ids::ActiveModel {
            customer_id: Set(customer.id),
            kind: Set(kind.as_str().into()),
            account_id: Set(account.to_string()),
            value: Set(value.into()),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&txn)
        .await;
        match created {
            Ok(row) => {
                txn.commit().await?;
                Ok(row)
            }
            Err(e) => {
                // Someone created it concurrently: use theirs.
                let _ = txn.rollback().await;
                match StoreError::from_insert(e) {
                    StoreError::Duplicate => self
                        .find_identity(kind, account, value)
                        .await?
                        .ok_or(StoreError::NotFound),
                    other => Err(other),
                }
            }
        }
    }

    /// The channel id Kefu writes to for this customer on this account
    /// (openid, external_userid), if they have one there.
    pub async fn recipient_of(
        &self,
        customer: CustomerId,
        account: &AccountId,
    ) -> Result<Option<String>, StoreError> {
        Ok(ids::Entity::find()
            .filter(ids::Column::CustomerId.eq(customer.0))
            .filter(ids::Column::AccountId.eq(account.as_str()))
            .filter(ids::Column::Kind.is_in([
                IdentityKind::OaOpenId.as_str(),
                IdentityKind::WecomExternalUserId.as_str(),
            ]))
            .one(self.conn())
            .await?
            .map(|i| i.value))
    }

    async fn find_identity(
        &self,
        kind: IdentityKind,
        account: &AccountId,
        value: &str,
    ) -> Result<Option<ids::Model>, StoreError> {
        Ok(ids::Entity::find()
            .filter(ids::Column::Kind.eq(kind.as_str()))
            .filter(ids::Column::AccountId.eq(account.as_str()))
            .filter(ids::Column::Value.eq(value))
            .one(self.conn())
            .await?)
    }

    /// Records a subscribe (`true`) or unsubscribe (`false`) that happened at
    /// `at`. Idempotent, and an older event never overrides a newer one.
    pub async fn set_follower_subscribed(
        &self,
        account: &AccountId,
        open_id: &str,
        subscribed: bool,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let row = self
            .identity(IdentityKind::OaOpenId, account, open_id)
            .await?;
        let (mut sub_at, mut unsub_at) = (row.subscribed_at, row.unsubscribed_at);
        if subscribed {
            sub_at = Some(sub_at.map_or(at, |t| t.max(at)));
        } else {
            unsub_at = Some(unsub_at.map_or(at, |t| t.max(at)));
        }
        let state = match (sub_at, unsub_at) {
            (Some(s), Some(u)) => s > u,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let mut active: ids::ActiveModel = row.into();
        active.subscribed = Set(Some(state));
        active.subscribed_at = Set(sub_at);
        active.unsubscribed_at = Set(unsub_at);
        active.updated_at = Set(Utc::now());
        active.update(self.writer()).await?;
        Ok(())
    }

    /// Records a reported location unless a newer one is known.
    pub async fn set_follower_location(
        &self,
        kind: IdentityKind,
        account: &AccountId,
        open_id: &str,
        latitude: f64,
        longitude: f64,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let row = self.identity(kind, account, open_id).await?;
        if row.location_at.is_some_and(|t| t > at) {
            return Ok(());
        }
        let mut active: ids::ActiveModel = row.into();
        active.latitude = Set(Some(latitude));
        active.longitude = Set(Some(longitude));
        active.location_at = Set(Some(at));
        active.updated_at = Set(Utc::now());
        active.update(self.writer()).await?;
        Ok(())
    }

    /// A follower, if known.
    pub async fn follower(
        &self,
        account: &AccountId,
        open_id: &str,
    ) -> Result<Option<Follower>, StoreError> {
        Ok(self
            .find_identity(IdentityKind::OaOpenId, account, open_id)
            .await?
            .map(|r| Follower {
                customer: CustomerId(r.customer_id),
                subscribed: r.subscribed,
                latitude: r.latitude,
                longitude: r.longitude,
                location_at: r.location_at,
            }))
    }
}
