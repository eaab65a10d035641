//! Channel identities of customers: followers of an Official Account, WeCom
//! external users. An identity belongs to exactly one customer.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, TransactionTrait,
};

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

    pub fn parse(s: &str) -> Option<Self> {
        [
            IdentityKind::OaOpenId,
            IdentityKind::WecomExternalUserId,
            IdentityKind::UnionId,
            IdentityKind::WebVisitor,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// What [`Store::link_unionid`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnionLink {
    /// The customer now carries the unionid.
    Added,
    /// They had it already.
    Already,
    /// Another customer had it: one was merged into the other. `moved` are
    /// the identities that changed hands (what caches must forget).
    Merged {
        removed: CustomerId,
        kept: CustomerId,
        moved: Vec<(String, String, String)>,
    },
    /// Another customer has it, and the CRM says they are two people (two
    /// different CRM ids): nothing changed.
    Conflict { other: CustomerId },
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

    /// Every channel identity of the customer.
    pub async fn identities_of(&self, customer: CustomerId) -> Result<Vec<ids::Model>, StoreError> {
        Ok(ids::Entity::find()
            .filter(ids::Column::CustomerId.eq(customer.0))
            .all(self.conn())
            .await?)
    }

    /// Gives the customer the unionid WeChat reported for one of their
    /// channel identities, joining them with the customer who already has
    /// it (the same person on another account): the one the CRM knows is
    /// kept, else the older. A nickname fills an empty name.
    pub async fn link_unionid(
        &self,
        customer: CustomerId,
        unionid: &str,
        nickname: Option<&str>,
    ) -> Result<UnionLink, StoreError> {
        let txn = self.writer().begin().await?;
        let holder = ids::Entity::find()
            .filter(ids::Column::Kind.eq(IdentityKind::UnionId.as_str()))
            .filter(ids::Column::AccountId.eq(""))
            .filter(ids::Column::Value.eq(unionid))
            .one(&txn)
            .await?;
        let mut outcome = match holder {
            Some(h) if h.customer_id == customer.0 => UnionLink::Already,
            None => {
                let now = Utc::now();
                ids::ActiveModel {
                    customer_id: Set(customer.0),
                    kind: Set(IdentityKind::UnionId.as_str().into()),
                    account_id: Set(String::new()),
                    value: Set(unionid.into()),
                    created_at: Set(now),
                    updated_at: Set(now),
                    ..Default::default()
                }
                .insert(&txn)
                .await
                .map_err(StoreError::from_insert)?;
                UnionLink::Added
            }
            Some(h) => {
                let mine = customers::Entity::find_by_id(customer.0)
                    .one(&txn)
                    .await?
                    .ok_or(StoreError::NotFound)?;
                let theirs = customers::Entity::find_by_id(h.customer_id)
                    .one(&txn)
                    .await?
                    .ok_or(StoreError::NotFound)?;
                match (&mine.crm_id, &theirs.crm_id) {
                    (Some(a), Some(b)) if a != b => UnionLink::Conflict {
                        other: CustomerId(theirs.id),
                    },
                    _ => {
                        let keep_mine = mine.crm_id.is_some() && theirs.crm_id.is_none()
                            || (mine.crm_id.is_some() == theirs.crm_id.is_some()
                                && mine.id < theirs.id);
                        let (kept, removed) = if keep_mine {
                            (mine.id, theirs.id)
                        } else {
                            (theirs.id, mine.id)
                        };
                        let moved = ids::Entity::find()
                            .filter(ids::Column::CustomerId.eq(removed))
                            .all(&txn)
                            .await?
                            .into_iter()
                            .map(|i| (i.kind, i.account_id, i.value))
                            .collect();
                        super::crm::merge_customer(
                            &txn,
                            CustomerId(removed),
                            CustomerId(kept),
                            "同一微信用户（unionid）/ the same WeChat user (unionid)",
                            "system",
                        )
                        .await?;
                        // The name and region Kefu learnt for the removed
                        // customer fill gaps of the kept one.
                        let gone = if keep_mine { &theirs } else { &mine };
                        fill_gaps(&txn, CustomerId(kept), gone).await?;
                        UnionLink::Merged {
                            removed: CustomerId(removed),
                            kept: CustomerId(kept),
                            moved,
                        }
                    }
                }
            }
        };
        let named = match &outcome {
            UnionLink::Merged { kept, .. } => Some(*kept),
            UnionLink::Conflict { .. } => None,
            _ => Some(customer),
        };
        if let (Some(who), Some(nick)) = (named, nickname.filter(|n| !n.trim().is_empty())) {
            customers::Entity::update_many()
                .col_expr(customers::Column::Name, Expr::value(nick))
                .filter(customers::Column::Id.eq(who.0))
                .filter(customers::Column::Name.is_null())
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        if let UnionLink::Merged { moved, .. } = &mut outcome {
            moved.sort();
        }
        Ok(outcome)
    }

    /// Sets the customer's name when they have none (a WeCom nickname).
    pub async fn name_if_unnamed(
        &self,
        customer: CustomerId,
        name: &str,
    ) -> Result<(), StoreError> {
        customers::Entity::update_many()
            .col_expr(customers::Column::Name, Expr::value(name))
            .filter(customers::Column::Id.eq(customer.0))
            .filter(customers::Column::Name.is_null())
            .exec(self.writer())
            .await?;
        Ok(())
    }

    /// The channel id Kefu writes to for this customer on this account
    /// (openid, external_userid, web visitor id), if they have one there.
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
                IdentityKind::WebVisitor.as_str(),
            ]))
            .one(self.conn())
            .await?
            .map(|i| i.value))
    }

    /// The identity, if it exists (never creates one).
    pub async fn find_identity_of(
        &self,
        kind: IdentityKind,
        account: &AccountId,
        value: &str,
    ) -> Result<Option<ids::Model>, StoreError> {
        self.find_identity(kind, account, value).await
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

/// Copies what `gone` knew and `into` does not (name, phone, region, city
/// group, dedicated agent is handled by the merge).
async fn fill_gaps<C: ConnectionTrait>(
    db: &C,
    into: CustomerId,
    gone: &customers::Model,
) -> Result<(), StoreError> {
    let fields = [
        (customers::Column::Name, gone.name.clone()),
        (customers::Column::Phone, gone.phone.clone()),
        (customers::Column::Region, gone.region.clone()),
    ];
    for (col, value) in fields {
        if let Some(v) = value {
            customers::Entity::update_many()
                .col_expr(col, Expr::value(v))
                .filter(customers::Column::Id.eq(into.0))
                .filter(col.is_null())
                .exec(db)
                .await?;
        }
    }
    if let Some(g) = gone.city_group_id {
        customers::Entity::update_many()
            .col_expr(customers::Column::CityGroupId, Expr::value(g))
            .filter(customers::Column::Id.eq(into.0))
            .filter(customers::Column::CityGroupId.is_null())
            .exec(db)
            .await?;
    }
    Ok(())
}
