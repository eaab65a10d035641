//! Messages: inbound ones are inserted in batches, de-duplicated by the
//! channel's key, in one transaction per batch (group commit).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    TransactionTrait,
};

use super::entities::messages;
use super::{Store, StoreError};
use crate::ids::{AccountId, MessageId};

/// The channel a message came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    OfficialAccount,
    WecomKf,
    Web,
}

impl From<crate::config::AccountKind> for Channel {
    fn from(kind: crate::config::AccountKind) -> Self {
        match kind {
            crate::config::AccountKind::OfficialAccount => Channel::OfficialAccount,
            crate::config::AccountKind::WecomKf => Channel::WecomKf,
        }
    }
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::OfficialAccount => "oa",
            Channel::WecomKf => "wecom_kf",
            Channel::Web => "web",
        }
    }
}

/// Who wrote it, seen from the company.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the customer (or a channel event about them).
    In,
    /// From the company (agent, robot, or a servicer in the WeCom client).
    Out,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// A message received from a channel, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewInbound {
    pub account: AccountId,
    pub channel: Channel,
    pub direction: Direction,
    /// The channel's id of the sender (openid, external_userid, servicer).
    pub sender: String,
    /// Unique per account for one real message; a redelivery has the same key.
    pub dedup_key: String,
    pub msg_type: String,
    /// Text for display and search, when the message has any.
    pub content: Option<String>,
    /// The message as received (XML or JSON), kept for later processing.
    pub payload: String,
    /// The channel's own message id, if it has one.
    pub channel_msg_id: Option<String>,
    /// When the channel says it was sent.
    pub sent_at: DateTime<Utc>,
    /// The stored file, when it came with the message (web visitors'
    /// uploads; WeChat's media is downloaded after storing).
    pub media_object_id: Option<i64>,
}

/// The outcome of storing one inbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    New(MessageId),
    Duplicate,
}

impl Store {
    /// Stores a batch in one transaction; each message is `New` or, when its
    /// key exists already (or appears earlier in the batch), `Duplicate`.
    pub async fn insert_inbound_batch(
        &self,
        batch: &[NewInbound],
    ) -> Result<Vec<Inserted>, StoreError> {
        let txn = self.writer().begin().await?;
        let out = insert_inbound_in(&txn, batch).await?;
        txn.commit().await?;
        Ok(out)
    }

    /// Inbound and outbound messages committed together (group commit).
    // One slice per kind of job keeps each kind's rows together for the
    // chunked statements; a struct would only rename the same list.
    #[allow(clippy::too_many_arguments)]
    pub async fn commit_batch(
        &self,
        inbound: &[NewInbound],
        outbound: &[super::outbox::NewOutbound],
        links: &[super::conversations::MessageLink],
        changes: &[super::conversations::StateChange],
        opens: &[super::conversations::OpenRequest],
        works: Vec<Work>,
        now: DateTime<Utc>,
    ) -> Result<Committed, StoreError> {
        let txn = self.writer().begin().await?;
        let inserted = if inbound.is_empty() {
            Vec::new()
        } else {
            insert_inbound_in(&txn, inbound).await?
        };
        let mut enqueued = Vec::with_capacity(outbound.len());
        for m in outbound {
            enqueued.push(super::outbox::enqueue_outbound_in(&txn, m, now).await?);
        }
        let mut opened = Vec::with_capacity(opens.len());
        for r in opens {
            opened.push(super::conversations::open_in(&txn, r).await?);
        }
        let mut linked = Vec::with_capacity(links.len());
        for l in links {
            linked.push(super::conversations::link_message_in(&txn, l).await?);
        }
        let mut changed = Vec::with_capacity(changes.len());
        for c in changes {
            changed.push(super::conversations::write_state_change_in(&txn, c).await?);
        }
        let mut worked = Vec::with_capacity(works.len());
        for work in works {
            // Each under a savepoint: one that fails is undone alone.
            let sp = txn.begin().await?;
            match work(&sp).await {
                Ok(deliver) => {
                    sp.commit().await?;
                    worked.push(Ok(deliver));
                }
                Err(e) => {
                    sp.rollback().await?;
                    worked.push(Err(e));
                }
            }
        }
        txn.commit().await?;
        Ok(Committed {
            inserted,
            enqueued,
            linked,
            changed,
            opened,
            worked,
        })
    }

    /// Messages of an account, oldest first (tests, exports).
    pub async fn messages_of_account(
        &self,
        account: &AccountId,
    ) -> Result<Vec<messages::Model>, StoreError> {
        use sea_orm::{ColumnTrait, QueryFilter};
        Ok(messages::Entity::find()
            .filter(messages::Column::AccountId.eq(account.as_str()))
            .order_by_asc(messages::Column::Id)
            .all(self.conn())
            .await?)
    }

    /// One message by id.
    /// Several messages by id, in id order (missing ones are left out).
    pub async fn messages_by_ids(
        &self,
        ids: &[MessageId],
    ) -> Result<Vec<messages::Model>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(messages::Entity::find()
            .filter(messages::Column::Id.is_in(ids.iter().map(|m| m.0)))
            .order_by_asc(messages::Column::Id)
            .all(self.conn())
            .await?)
    }

    pub async fn message(&self, id: MessageId) -> Result<messages::Model, StoreError> {
        messages::Entity::find_by_id(id.0)
            .one(self.conn())
            .await?
            .ok_or(StoreError::NotFound)
    }
}

/// What one group commit stored, in the order of its inputs.
#[derive(Default)]
pub struct Committed {
    pub inserted: Vec<Inserted>,
    pub enqueued: Vec<super::outbox::Enqueued>,
    /// Whether each link was made here.
    pub linked: Vec<bool>,
    /// Each state change's transition id, `None` when it lost its check.
    pub changed: Vec<Option<i64>>,
    pub opened: Vec<super::conversations::Opened>,
    /// Each work's result: what to deliver once the commit is durable.
    pub worked: Vec<Result<Deliver, StoreError>>,
}

/// Hands a work's result to its caller (called only after the commit).
pub type Deliver = Box<dyn FnOnce() + Send>;

/// Writes done inside a group commit's transaction (under a savepoint), for
/// writes that would otherwise cost a commit of their own.
pub type Work = Box<
    dyn for<'t> FnOnce(
            &'t DatabaseTransaction,
        ) -> futures_util::future::BoxFuture<'t, Result<Deliver, StoreError>>
        + Send,
>;

/// Rows per INSERT statement. A batch is cut greedily into chunks of these
/// sizes, so only a handful of distinct statements exist and each stays in
/// the driver's prepared-statement cache (SQLite allows 32766 bound values;
/// a row binds 11).
const CHUNK_SIZES: [usize; 5] = [256, 64, 16, 4, 1];

/// Splits `n` rows into chunk lengths drawn from [`CHUNK_SIZES`].
fn chunk_lengths(mut n: usize) -> Vec<usize> {
    let mut out = Vec::new();
    for size in CHUNK_SIZES {
        while n >= size {
            out.push(size);
            n -= size;
        }
    }
    out
}

/// The batch insert, inside a caller's transaction.
pub(crate) async fn insert_inbound_in(
    txn: &DatabaseTransaction,
    batch: &[NewInbound],
) -> Result<Vec<Inserted>, StoreError> {
    use messages::Column as C;
    let mut out = vec![Inserted::Duplicate; batch.len()];
    let mut base = 0;
    for len in chunk_lengths(batch.len()) {
        let chunk = &batch[base..base + len];
        let mut q = Query::insert();
        q.into_table(messages::Entity).columns([
            C::AccountId,
            C::Channel,
            C::Direction,
            C::Sender,
            C::DedupKey,
            C::MsgType,
            C::Content,
            C::Payload,
            C::ChannelMsgId,
            C::SentAt,
            C::CreatedAt,
            C::MediaObjectId,
        ]);
        let now = Utc::now();
        for m in chunk {
            q.values([
                m.account.as_str().into(),
                m.channel.as_str().into(),
                m.direction.as_str().into(),
                m.sender.clone().into(),
                m.dedup_key.clone().into(),
                m.msg_type.clone().into(),
                m.content.clone().into(),
                m.payload.clone().into(),
                m.channel_msg_id.clone().into(),
                m.sent_at.into(),
                now.into(),
                m.media_object_id.into(),
            ])
            .map_err(|e| StoreError::Db(sea_orm::DbErr::Custom(e.to_string())))?;
        }
        q.on_conflict(
            OnConflict::columns([C::AccountId, C::DedupKey])
                .do_nothing()
                .to_owned(),
        );
        q.returning(Query::returning().columns([C::Id, C::AccountId, C::DedupKey]));
        let rows = txn.query_all(&q).await?;
        // Map each returned key to the first row of the chunk that carries it;
        // later rows with the same key stay Duplicate.
        let mut index: std::collections::HashMap<(&str, &str), usize> =
            std::collections::HashMap::with_capacity(chunk.len());
        for (i, m) in chunk.iter().enumerate() {
            index
                .entry((m.account.as_str(), m.dedup_key.as_str()))
                .or_insert(base + i);
        }
        for row in rows {
            let id: i64 = row.try_get("", "id")?;
            let account: String = row.try_get("", "account_id")?;
            let key: Option<String> = row.try_get("", "dedup_key")?;
            if let Some(key) = key
                && let Some(&i) = index.get(&(account.as_str(), key.as_str()))
            {
                out[i] = Inserted::New(MessageId(id));
            }
        }
        base += len;
    }
    touch_contact_windows(txn, batch, &out).await?;
    Ok(out)
}

/// Records, per customer, when they last wrote: the start of WeChat's
/// customer-service window. Only new customer messages count (events such
/// as a subscription or a job report do not open the 48-hour window).
async fn touch_contact_windows(
    txn: &DatabaseTransaction,
    batch: &[NewInbound],
    results: &[Inserted],
) -> Result<(), StoreError> {
    use std::collections::HashMap;
    let mut latest: HashMap<(&str, &str), DateTime<Utc>> = HashMap::new();
    for (m, r) in batch.iter().zip(results) {
        if matches!(r, Inserted::New(_)) && m.direction == Direction::In && m.msg_type != "event" {
            let at = latest
                .entry((m.account.as_str(), m.sender.as_str()))
                .or_insert(m.sent_at);
            *at = std::cmp::max(*at, m.sent_at);
        }
    }
    let rows: Vec<_> = latest.into_iter().collect();
    let mut base = 0;
    for len in chunk_lengths(rows.len()) {
        let mut q = Query::insert();
        q.into_table(Alias::new("contact_windows")).columns([
            Alias::new("account_id"),
            Alias::new("recipient"),
            Alias::new("last_inbound_at"),
        ]);
        for ((account, recipient), at) in &rows[base..base + len] {
            q.values([(*account).into(), (*recipient).into(), (*at).into()])
                .map_err(|e| StoreError::Db(sea_orm::DbErr::Custom(e.to_string())))?;
        }
        let col = |c: &str| Expr::col((Alias::new("contact_windows"), Alias::new(c)));
        let excluded = Expr::col((Alias::new("excluded"), Alias::new("last_inbound_at")));
        q.on_conflict(
            OnConflict::columns([Alias::new("account_id"), Alias::new("recipient")])
                .value(
                    Alias::new("last_inbound_at"),
                    Expr::case(excluded.clone().gt(col("last_inbound_at")), excluded)
                        .finally(col("last_inbound_at")),
                )
                .to_owned(),
        );
        txn.execute(&q).await?;
        base += len;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DatabaseSettings;

    fn msg(key: &str) -> NewInbound {
        NewInbound {
            account: AccountId::parse("acc").unwrap(),
            channel: Channel::OfficialAccount,
            direction: Direction::In,
            sender: "o1".into(),
            dedup_key: key.into(),
            msg_type: "text".into(),
            content: Some("你好 😀".into()),
            payload: "<xml/>".into(),
            channel_msg_id: None,
            sent_at: Utc::now(),
            media_object_id: None,
        }
    }

    async fn store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let settings = DatabaseSettings {
            url: crate::config::Secret::new(format!(
                "sqlite://{}/t.db?mode=rwc",
                dir.path().display()
            )),
            ..Default::default()
        };
        let s = Store::connect(&settings).await.unwrap();
        s.migrate().await.unwrap();
        (s, dir)
    }

    #[tokio::test]
    async fn a_batch_stores_each_key_once() {
        let (s, _d) = store().await;
        let first = s
            .insert_inbound_batch(&[msg("a"), msg("b"), msg("a")])
            .await
            .unwrap();
        assert!(matches!(first[0], Inserted::New(_)));
        assert!(matches!(first[1], Inserted::New(_)));
        assert_eq!(first[2], Inserted::Duplicate);
        let again = s.insert_inbound_batch(&[msg("b"), msg("c")]).await.unwrap();
        assert_eq!(again[0], Inserted::Duplicate);
        assert!(matches!(again[1], Inserted::New(_)));
        let all = s
            .messages_of_account(&AccountId::parse("acc").unwrap())
            .await
            .unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].content.as_deref(), Some("你好 😀"));
    }

    #[test]
    fn batches_are_cut_into_few_statement_shapes() {
        assert_eq!(chunk_lengths(0), Vec::<usize>::new());
        assert_eq!(chunk_lengths(3), vec![1, 1, 1]);
        assert_eq!(chunk_lengths(341), vec![256, 64, 16, 4, 1]);
        assert_eq!(chunk_lengths(600).iter().sum::<usize>(), 600);
    }

    #[tokio::test]
    async fn large_batches_span_statements() {
        let (s, _d) = store().await;
        let batch: Vec<_> = (0..1200).map(|i| msg(&format!("k{i}"))).collect();
        let r = s.insert_inbound_batch(&batch).await.unwrap();
        assert!(r.iter().all(|x| matches!(x, Inserted::New(_))));
        let r = s.insert_inbound_batch(&batch).await.unwrap();
        assert!(r.iter().all(|x| *x == Inserted::Duplicate));
    }
}
