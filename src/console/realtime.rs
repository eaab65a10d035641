//! The console's realtime channel: one WebSocket per tab, `GET /api/ws`,
//! authenticated by the session cookie (see `docs/workbench.md`).
//!
//! Every event a user should see gets the next number of that user's
//! sequence and is kept in their ring of the last [`RING`] events. A tab
//! says hello with the last sequence it saw; it is sent what it missed, in
//! order, before anything new, or told to reload when that is no longer
//! kept (or the server restarted: the `epoch` changed). Each socket has a
//! bounded queue ([`SOCKET_QUEUE`]): a socket that cannot keep up is closed
//! with a `reload`, never allowed to hold the server's memory.
//!
//! Fan-out goes only to who needs it: a conversation's messages and
//! outbound statuses to the agent serving it and to those watching it;
//! its state changes also to the agent it left, and to supervisors of the
//! groups concerned; presence and alerts to those supervisors (admins see
//! every group).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt as _;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use crate::auth::{CurrentUser, Role};
use crate::bus::{Bus, Event};
use crate::http_error::{ApiError, Code};
use crate::ids::{AgentId, ConversationId, GroupId, MessageId};
use crate::routing::Router;
use crate::state::AppState;
use crate::store::Store;
use crate::workers::Workers;

/// Events kept per user for resuming.
pub const RING: usize = 512;
/// Frames waiting for one socket before it counts as too slow.
pub const SOCKET_QUEUE: usize = 1024;
/// A user with no socket is forgotten after this (their tabs reload).
pub const RETAIN: Duration = Duration::from_secs(600);
/// The hello must come this soon after the upgrade.
const HELLO_WITHIN: Duration = Duration::from_secs(10);
/// Pings this often; a socket silent for [`SILENCE`] is closed.
const PING_EVERY: Duration = Duration::from_secs(20);
const SILENCE: Duration = Duration::from_secs(60);
/// Largest frame a tab may send.
const MAX_CLIENT_FRAME: usize = 16 * 1024;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/ws", web::get().to(connect));
}

/// What a hello gets back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attach {
    /// From `seq` on; nothing to catch up (a fresh tab loads state by HTTP
    /// after this).
    Fresh { seq: u64 },
    /// The frames missed since the tab's last sequence, then live.
    Resume { seq: u64, missed: Vec<Arc<str>> },
    /// Too far behind or another epoch: reload state, then live from `seq`.
    Reload { seq: u64 },
}

struct Socket {
    id: u64,
    /// The sign-in session that opened it (ended at sign-out).
    session: Arc<str>,
    tx: mpsc::Sender<Arc<str>>,
    watching: HashSet<ConversationId>,
}

#[derive(Default)]
struct User {
    seq: u64,
    ring: VecDeque<(u64, Arc<str>)>,
    sockets: Vec<Socket>,
    /// When their last socket closed.
    idle_since: Option<Instant>,
}

/// Who a connected supervisor or admin oversees.
#[derive(Debug, Clone)]
struct Oversight {
    admin: bool,
    groups: HashSet<GroupId>,
}

/// The hub's state, without I/O (unit-tested).
#[derive(Default)]
pub struct Core {
    users: HashMap<AgentId, User>,
    watchers: HashMap<ConversationId, HashSet<AgentId>>,
    overseers: HashMap<AgentId, Oversight>,
    next_socket: u64,
    /// Sockets closed for being slow (for metrics and tests).
    pub dropped_slow: u64,
}

impl Core {
    /// Numbers `event` in `user`'s sequence, keeps it, and queues it on each
    /// of their sockets; a full socket is dropped (its task sends `reload`).
    pub fn push(&mut self, user: AgentId, event: &Value) -> u64 {
        let u = self.users.entry(user).or_default();
        u.seq += 1;
        let seq = u.seq;
        let frame: Arc<str> = json!({"type": "event", "seq": seq, "event": event})
            .to_string()
            .into();
        u.ring.push_back((seq, frame.clone()));
        while u.ring.len() > RING {
            u.ring.pop_front();
        }
        let before = u.sockets.len();
        u.sockets.retain(|s| s.tx.try_send(frame.clone()).is_ok());
        let dropped = (before - u.sockets.len()) as u64;
        if dropped > 0 && u.sockets.is_empty() {
            u.idle_since = Some(Instant::now());
        }
        self.dropped_slow += dropped;
        seq
    }

    /// Registers a socket for `user`, answering its hello under the same lock
    /// as every push: nothing between the catch-up and live is lost or sent
    /// twice.
    pub fn attach(
        &mut self,
        user: AgentId,
        session: &str,
        last_seq: Option<u64>,
        same_epoch: bool,
        tx: mpsc::Sender<Arc<str>>,
    ) -> (u64, Attach) {
        self.next_socket += 1;
        let id = self.next_socket;
        let u = self.users.entry(user).or_default();
        let seq = u.seq;
        let answer = match last_seq {
            None => Attach::Fresh { seq },
            Some(_) if !same_epoch => Attach::Reload { seq },
            Some(last) if last > seq => Attach::Reload { seq },
            Some(last) if last == seq => Attach::Resume {
                seq,
                missed: Vec::new(),
            },
            Some(last) => match u.ring.front() {
                Some((oldest, _)) if *oldest <= last + 1 => Attach::Resume {
                    seq,
                    missed: u
                        .ring
                        .iter()
                        .filter(|(s, _)| *s > last)
                        .map(|(_, f)| f.clone())
                        .collect(),
                },
                _ => Attach::Reload { seq },
            },
        };
        u.sockets.push(Socket {
            id,
            session: session.into(),
            tx,
            watching: HashSet::new(),
        });
        u.idle_since = None;
        (id, answer)
    }

    /// Drops every socket the session opened (it signed out): their tasks
    /// see their queue end and close them. How many there were.
    pub fn end_session(&mut self, session: &str) -> usize {
        let mut n = 0;
        for u in self.users.values_mut() {
            let before = u.sockets.len();
            u.sockets.retain(|s| &*s.session != session);
            n += before - u.sockets.len();
            if before > 0 && u.sockets.is_empty() {
                u.idle_since = Some(Instant::now());
            }
        }
        n
    }

    /// The socket is gone.
    pub fn detach(&mut self, user: AgentId, socket: u64) {
        let Some(u) = self.users.get_mut(&user) else {
            return;
        };
        let mut unwatch = Vec::new();
        u.sockets.retain(|s| {
            if s.id == socket {
                unwatch.extend(s.watching.iter().copied());
                false
            } else {
                true
            }
        });
        let still: HashSet<ConversationId> = u
            .sockets
            .iter()
            .flat_map(|s| s.watching.iter().copied())
            .collect();
        if u.sockets.is_empty() {
            u.idle_since = Some(Instant::now());
            self.overseers.remove(&user);
        }
        for c in unwatch {
            if !still.contains(&c) {
                self.unwatch_all(user, c);
            }
        }
    }

    fn unwatch_all(&mut self, user: AgentId, c: ConversationId) {
        if let Some(w) = self.watchers.get_mut(&c) {
            w.remove(&user);
            if w.is_empty() {
                self.watchers.remove(&c);
            }
        }
    }

    pub fn watch(&mut self, user: AgentId, socket: u64, c: ConversationId) {
        if let Some(s) = self
            .users
            .get_mut(&user)
            .and_then(|u| u.sockets.iter_mut().find(|s| s.id == socket))
        {
            s.watching.insert(c);
            self.watchers.entry(c).or_default().insert(user);
        }
    }

    pub fn unwatch(&mut self, user: AgentId, socket: u64, c: ConversationId) {
        let Some(u) = self.users.get_mut(&user) else {
            return;
        };
        let mut others = false;
        for s in &mut u.sockets {
            if s.id == socket {
                s.watching.remove(&c);
            } else if s.watching.contains(&c) {
                others = true;
            }
        }
        if !others {
            self.unwatch_all(user, c);
        }
    }

    fn oversee(&mut self, user: AgentId, o: Oversight) {
        self.overseers.insert(user, o);
    }

    /// Those watching `c`.
    pub fn watchers_of(&self, c: ConversationId) -> impl Iterator<Item = AgentId> + '_ {
        self.watchers.get(&c).into_iter().flatten().copied()
    }

    /// Connected supervisors of any of `groups`, and admins.
    fn overseers_of<'a>(
        &'a self,
        groups: &'a HashSet<GroupId>,
    ) -> impl Iterator<Item = AgentId> + 'a {
        self.overseers
            .iter()
            .filter(|(_, o)| o.admin || !o.groups.is_disjoint(groups))
            .map(|(a, _)| *a)
    }

    /// Forgets users without a socket for longer than `retain`.
    pub fn sweep(&mut self, now: Instant, retain: Duration) -> usize {
        let before = self.users.len();
        self.users.retain(|_, u| {
            !u.sockets.is_empty() || u.idle_since.is_none_or(|t| now.duration_since(t) < retain)
        });
        before - self.users.len()
    }

    /// Every socket is closed (the bus lagged: what was missed is unknown).
    fn drop_all_sockets(&mut self) {
        for u in self.users.values_mut() {
            if !u.sockets.is_empty() {
                u.idle_since = Some(Instant::now());
            }
            u.sockets.clear();
        }
        self.watchers.clear();
        self.overseers.clear();
    }

    /// (users with a socket, sockets).
    pub fn counts(&self) -> (usize, usize) {
        let sockets: usize = self.users.values().map(|u| u.sockets.len()).sum();
        let users = self
            .users
            .values()
            .filter(|u| !u.sockets.is_empty())
            .count();
        (users, sockets)
    }
}

/// The conversation facts fan-out needs, cached.
#[derive(Debug, Clone, Copy)]
struct ConvInfo {
    agent: Option<AgentId>,
    queue_group: Option<GroupId>,
}

/// The realtime hub: cheap to clone, one per instance.
#[derive(Clone)]
pub struct Hub {
    core: Arc<Mutex<Core>>,
    epoch: Arc<Mutex<String>>,
    store: Store,
    router: Router,
    convs: moka::future::Cache<i64, ConvInfo>,
    outbound: moka::future::Cache<i64, Option<i64>>,
}

fn new_epoch() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl Hub {
    pub fn new(store: Store, router: Router) -> Self {
        Self {
            core: Arc::default(),
            epoch: Arc::new(Mutex::new(new_epoch())),
            store,
            router,
            convs: moka::future::Cache::builder()
                .max_capacity(200_000)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
            outbound: moka::future::Cache::new(100_000),
        }
    }

    fn core(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn epoch(&self) -> String {
        self.epoch.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// (users connected, sockets).
    pub fn counts(&self) -> (usize, usize) {
        self.core().counts()
    }

    /// Follows the bus and sweeps idle users.
    pub fn start(&self, bus: &Bus, workers: &mut Workers) {
        let hub = self.clone();
        let mut rx = bus.subscribe();
        workers.spawn("realtime", move |mut shutdown| async move {
            let mut sweep = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    () = shutdown.wait() => return,
                    _ = sweep.tick() => {
                        hub.core().sweep(Instant::now(), RETAIN);
                    }
                    got = rx.recv() => match got {
                        Ok(env) => hub.fan_out(&env.event).await,
                        Err(RecvError::Lagged(n)) => {
                            tracing::warn!(missed = n, "the console hub lagged behind the bus; every tab reloads");
                            *hub.epoch.lock().unwrap_or_else(|e| e.into_inner()) = new_epoch();
                            hub.core().drop_all_sockets();
                        }
                        Err(RecvError::Closed) => return,
                    }
                }
            }
        });
    }

    async fn conv(&self, id: ConversationId) -> Option<ConvInfo> {
        if let Some(c) = self.convs.get(&id.0).await {
            return Some(c);
        }
        let c = self.store.conversation(id).await.ok()?;
        let info = ConvInfo {
            agent: c.agent_id.map(AgentId),
            queue_group: c.queue_group_id.map(GroupId),
        };
        self.convs.insert(id.0, info).await;
        Some(info)
    }

    /// The groups of these agents (from the router) and a queue's group.
    fn groups_of(&self, agents: &[AgentId], queue: Option<GroupId>) -> HashSet<GroupId> {
        let now = chrono::Utc::now();
        let mut g: HashSet<GroupId> = agents
            .iter()
            .filter_map(|a| self.router.agent(*a, now))
            .flat_map(|a| a.groups)
            .collect();
        g.extend(queue);
        g
    }

    /// Who hears `event`, and the event as they see it.
    async fn fan_out(&self, event: &Event) {
        let mut to: HashSet<AgentId> = HashSet::new();
        match event {
            Event::MessageFiled { conversation, .. } => {
                if let Some(c) = self.conv(*conversation).await {
                    to.extend(c.agent);
                }
                to.extend(self.core().watchers_of(*conversation));
            }
            Event::ConversationChanged {
                conversation,
                state,
                agent,
                previous_agent,
                ..
            } => {
                let queue = self.conv(*conversation).await.and_then(|c| c.queue_group);
                let info = ConvInfo {
                    agent: if state == "assigned" { *agent } else { None },
                    queue_group: queue,
                };
                self.convs.insert(conversation.0, info).await;
                let agents: Vec<AgentId> =
                    agent.iter().chain(previous_agent.iter()).copied().collect();
                let groups = self.groups_of(&agents, queue);
                to.extend(agents);
                let core = self.core();
                to.extend(core.watchers_of(*conversation));
                to.extend(core.overseers_of(&groups));
            }
            Event::OutboundStatus { message_id, .. } => {
                let Some(conv) = self.conversation_of(*message_id).await else {
                    return;
                };
                if let Some(c) = self.conv(conv).await {
                    to.extend(c.agent);
                }
                to.extend(self.core().watchers_of(conv));
            }
            Event::AgentPresence { agent, .. } => {
                let groups = self.groups_of(&[*agent], None);
                to.insert(*agent);
                to.extend(self.core().overseers_of(&groups));
            }
            Event::SupervisorAlert { agent, .. } => {
                let groups = self.groups_of(&[*agent], None);
                to.extend(self.core().overseers_of(&groups));
            }
            // The customer reads or types: whoever serves or watches sees
            // their messages marked read, or hears the typing.
            Event::Read {
                conversation,
                agent: None,
                ..
            }
            | Event::Typing {
                conversation,
                agent: None,
                ..
            } => {
                if let Some(c) = self.conv(*conversation).await {
                    to.extend(c.agent);
                }
                to.extend(self.core().watchers_of(*conversation));
            }
            _ => return,
        }
        if to.is_empty() {
            return;
        }
        let Ok(body) = serde_json::to_value(event) else {
            return;
        };
        let mut core = self.core();
        for user in to {
            core.push(user, &body);
        }
    }

    async fn conversation_of(&self, message: MessageId) -> Option<ConversationId> {
        if let Some(c) = self.outbound.get(&message.0).await {
            return c.map(ConversationId);
        }
        let c = self.store.message(message).await.ok()?.conversation_id;
        self.outbound.insert(message.0, c).await;
        c.map(ConversationId)
    }

    /// The last sequence number given to `user` (0: none yet).
    /// Closes the sockets of a session that signed out.
    pub fn end_session(&self, session: &str) -> usize {
        self.core().end_session(session)
    }

    pub fn seq_of(&self, user: AgentId) -> u64 {
        self.core().users.get(&user).map_or(0, |u| u.seq)
    }

    /// Pushes an event to one user (tests, and server-side notices).
    pub fn push(&self, user: AgentId, event: &Value) -> u64 {
        self.core().push(user, event)
    }
}

/// What a tab sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientMessage {
    Hello {
        #[serde(default)]
        last_seq: Option<u64>,
        #[serde(default)]
        epoch: Option<String>,
    },
    Watch {
        conversation: i64,
    },
    Unwatch {
        conversation: i64,
    },
    /// The agent is typing a reply (heard by a web visitor; the page sends
    /// it at most every few seconds).
    Typing {
        conversation: i64,
    },
}

/// `Origin` must name this host: another site's page cannot open a socket
/// with the user's cookie.
fn same_origin(req: &HttpRequest) -> bool {
    let Some(origin) = req.headers().get("origin").and_then(|v| v.to_str().ok()) else {
        // Browsers always send it on WebSocket requests; tools may not.
        return true;
    };
    let host = req.connection_info().host().to_owned();
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host)
}

async fn connect(
    state: web::Data<AppState>,
    user: CurrentUser,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    if !same_origin(&req) {
        return Err(ApiError::new(
            Code::Forbidden,
            "the socket must be opened from this site",
        ));
    }
    let (response, session, stream) =
        actix_ws::handle(&req, body).map_err(|e| ApiError::new(Code::BadRequest, e.to_string()))?;
    let stream = stream.max_frame_size(MAX_CLIENT_FRAME);
    let state = state.into_inner();
    actix_web::rt::spawn(serve_socket(state, user, session, stream));
    Ok(response)
}

async fn send(session: &mut actix_ws::Session, v: Value) -> bool {
    session.text(v.to_string()).await.is_ok()
}

async fn serve_socket(
    state: Arc<AppState>,
    user: CurrentUser,
    mut session: actix_ws::Session,
    mut stream: actix_ws::MessageStream,
) {
    let hub = state.hub.clone();
    // The hello first.
    let hello = tokio::time::timeout(HELLO_WITHIN, async {
        while let Some(Ok(m)) = stream.next().await {
            if let actix_ws::Message::Text(t) = m {
                return serde_json::from_str::<ClientMessage>(&t).ok();
            }
        }
        None
    })
    .await;
    let Ok(Some(ClientMessage::Hello { last_seq, epoch })) = hello else {
        let _ = send(
            &mut session,
            json!({"type": "error", "message": "say hello first"}),
        )
        .await;
        let _ = session.close(None).await;
        return;
    };
    if user.role.at_least(Role::Supervisor) {
        let groups = state
            .store
            .agent_groups(user.agent_id)
            .await
            .unwrap_or_default()
            .into_iter()
            .collect();
        hub.core().oversee(
            user.agent_id,
            Oversight {
                admin: user.role == Role::Admin,
                groups,
            },
        );
    }
    let (tx, mut rx) = mpsc::channel::<Arc<str>>(SOCKET_QUEUE);
    let current = hub.epoch();
    let same_epoch = epoch.as_deref() == Some(current.as_str());
    let (socket, answer) =
        hub.core()
            .attach(user.agent_id, user.session_id(), last_seq, same_epoch, tx);
    let (kind, seq, missed) = match answer {
        Attach::Fresh { seq } => ("welcome", seq, Vec::new()),
        Attach::Resume { seq, missed } => ("welcome", seq, missed),
        Attach::Reload { seq } => ("reload", seq, Vec::new()),
    };
    let mut ok = send(
        &mut session,
        json!({"type": kind, "epoch": current, "seq": seq, "missed": missed.len(), "user": user.agent_id.0}),
    )
    .await;
    for f in missed {
        if !ok {
            break;
        }
        ok = session.text(f.to_string()).await.is_ok();
    }
    // Each socket pings (and checks its session) at its own phase: sockets
    // opened together, as after a restart or a reconnect storm, would
    // otherwise all ping and query at the same moment every period, and
    // messages delivered in that moment would wait behind them.
    let phase = Duration::from_millis(rand::random_range(0..PING_EVERY.as_millis() as u64));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + phase, PING_EVERY);
    let mut heard = Instant::now();
    while ok {
        tokio::select! {
            frame = rx.recv() => match frame {
                Some(f) => ok = session.text(f.to_string()).await.is_ok(),
                None => {
                    // Signed out, dropped for being slow, or every socket
                    // was reset.
                    let frame = if signed_in(&state, &user).await {
                        json!({"type": "reload", "epoch": hub.epoch(), "seq": 0})
                    } else {
                        json!({"type": "signed_out"})
                    };
                    let _ = send(&mut session, frame).await;
                    break;
                }
            },
            msg = stream.next() => {
                heard = Instant::now();
                match msg {
                    Some(Ok(actix_ws::Message::Text(t))) => {
                        ok = client_message(&state, &user, socket, &mut session, &t).await;
                    }
                    Some(Ok(actix_ws::Message::Ping(b))) => ok = session.pong(&b).await.is_ok(),
                    Some(Ok(actix_ws::Message::Pong(_))) => {}
                    Some(Ok(actix_ws::Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                }
            }
            _ = ping.tick() => {
                if heard.elapsed() > SILENCE {
                    break;
                }
                // Signed out elsewhere, expired, disabled, password reset.
                if !signed_in(&state, &user).await {
                    let _ = send(&mut session, json!({"type": "signed_out"})).await;
                    break;
                }
                ok = session.ping(b"").await.is_ok();
            }
        }
    }
    hub.core().detach(user.agent_id, socket);
    let _ = session.close(None).await;
}

/// Whether the socket's sign-in session still counts (a database error
/// keeps the socket: the next check decides).
async fn signed_in(state: &AppState, user: &CurrentUser) -> bool {
    match state.store.session_user(user.session_id()).await {
        Ok(Some(s)) => s.active && s.expires_at > chrono::Utc::now(),
        Ok(None) => false,
        Err(e) => {
            tracing::warn!(error = %e, "session not checked for a socket");
            true
        }
    }
}

/// A tab's request after its hello; `false` ends the socket.
async fn client_message(
    state: &AppState,
    user: &CurrentUser,
    socket: u64,
    session: &mut actix_ws::Session,
    text: &str,
) -> bool {
    let msg = match serde_json::from_str::<ClientMessage>(text) {
        Ok(m) => m,
        Err(e) => return send(session, json!({"type": "error", "message": e.to_string()})).await,
    };
    match msg {
        ClientMessage::Hello { .. } => {
            send(
                session,
                json!({"type": "error", "message": "hello was said already"}),
            )
            .await
        }
        ClientMessage::Watch { conversation } => {
            let id = ConversationId(conversation);
            match super::conversation_api::conversation_for(state, user, id).await {
                Ok(_) => {
                    state.hub.core().watch(user.agent_id, socket, id);
                    send(
                        session,
                        json!({"type": "watching", "conversation": conversation}),
                    )
                    .await
                }
                Err(e) => send(
                    session,
                    json!({"type": "error", "conversation": conversation, "message": e.message}),
                )
                .await,
            }
        }
        ClientMessage::Typing { conversation } => {
            let id = ConversationId(conversation);
            // Only the serving agent's typing reaches the customer.
            if let Ok(c) = super::conversation_api::conversation_for(state, user, id).await
                && c.agent_id == Some(user.agent_id.0)
                && c.state == "assigned"
            {
                state.bus.publish(Event::Typing {
                    conversation: id,
                    customer: crate::ids::CustomerId(c.customer_id),
                    account: c.account_id.clone(),
                    agent: Some(user.agent_id),
                });
            }
            true
        }
        ClientMessage::Unwatch { conversation } => {
            state
                .hub
                .core()
                .unwatch(user.agent_id, socket, ConversationId(conversation));
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: u64) -> Value {
        json!({"type": "ping", "nonce": n.to_string()})
    }

    fn seq_of(f: &str) -> u64 {
        serde_json::from_str::<Value>(f).unwrap()["seq"]
            .as_u64()
            .unwrap()
    }

    #[test]
    fn a_tab_resumes_with_exactly_what_it_missed() {
        let mut core = Core::default();
        let me = AgentId(1);
        let (tx, mut rx) = mpsc::channel(8);
        let (s, a) = core.attach(me, "s", None, true, tx);
        assert_eq!(a, Attach::Fresh { seq: 0 });
        core.push(me, &ev(1));
        core.push(me, &ev(2));
        assert_eq!(seq_of(&rx.try_recv().unwrap()), 1);
        core.detach(me, s);
        core.push(me, &ev(3));
        core.push(me, &ev(4));
        let (tx, _rx) = mpsc::channel(8);
        let (_, a) = core.attach(me, "s", Some(2), true, tx);
        let Attach::Resume { seq, missed } = a else {
            panic!("{a:?}")
        };
        assert_eq!(seq, 4);
        assert_eq!(missed.iter().map(|f| seq_of(f)).collect::<Vec<_>>(), [3, 4]);
    }

    #[test]
    fn too_far_behind_ahead_or_another_epoch_reloads() {
        let mut core = Core::default();
        let me = AgentId(1);
        for i in 0..(RING as u64 + 10) {
            core.push(me, &ev(i));
        }
        let chan = || mpsc::channel(8).0;
        assert!(matches!(
            core.attach(me, "s", Some(3), true, chan()).1,
            Attach::Reload { .. }
        ));
        assert!(matches!(
            core.attach(me, "s", Some(9_999), true, chan()).1,
            Attach::Reload { .. }
        ));
        assert!(matches!(
            core.attach(me, "s", Some(RING as u64 + 5), false, chan()).1,
            Attach::Reload { .. }
        ));
        let Attach::Resume { missed, .. } =
            core.attach(me, "s", Some(RING as u64 + 5), true, chan()).1
        else {
            panic!()
        };
        assert_eq!(missed.len(), 5);
    }

    #[test]
    fn a_slow_socket_is_dropped_and_the_others_keep_theirs() {
        let mut core = Core::default();
        let me = AgentId(1);
        let (slow, _keep) = mpsc::channel(2);
        let (fast, mut fast_rx) = mpsc::channel(100);
        core.attach(me, "s", None, true, slow);
        core.attach(me, "s", None, true, fast);
        for i in 0..5 {
            core.push(me, &ev(i));
        }
        assert_eq!(core.dropped_slow, 1);
        assert_eq!(core.counts(), (1, 1));
        let mut n = 0;
        while fast_rx.try_recv().is_ok() {
            n += 1;
        }
        assert_eq!(n, 5);
    }

    #[test]
    fn watchers_follow_their_sockets() {
        let mut core = Core::default();
        let sup = AgentId(9);
        let c = ConversationId(5);
        let (s1, _) = core.attach(sup, "s", None, true, mpsc::channel(8).0);
        let (s2, _) = core.attach(sup, "s", None, true, mpsc::channel(8).0);
        core.watch(sup, s1, c);
        core.watch(sup, s2, c);
        core.unwatch(sup, s1, c);
        assert_eq!(
            core.watchers_of(c).collect::<Vec<_>>(),
            [sup],
            "the other tab still watches"
        );
        core.detach(sup, s2);
        assert_eq!(core.watchers_of(c).count(), 0);
    }

    #[test]
    fn idle_users_are_forgotten_after_the_retention() {
        let mut core = Core::default();
        let (s, _) = core.attach(AgentId(1), "s", None, true, mpsc::channel(8).0);
        core.detach(AgentId(1), s);
        let later = Instant::now() + RETAIN + Duration::from_secs(1);
        assert_eq!(core.sweep(Instant::now(), RETAIN), 0);
        assert_eq!(core.sweep(later, RETAIN), 1);
    }

    #[test]
    fn overseers_see_their_groups_and_admins_everything() {
        let mut core = Core::default();
        core.oversee(
            AgentId(1),
            Oversight {
                admin: false,
                groups: [GroupId(1)].into(),
            },
        );
        core.oversee(
            AgentId(2),
            Oversight {
                admin: true,
                groups: HashSet::new(),
            },
        );
        let g2: HashSet<GroupId> = [GroupId(2)].into();
        let mut who: Vec<AgentId> = core.overseers_of(&g2).collect();
        who.sort();
        assert_eq!(who, [AgentId(2)]);
        let g1: HashSet<GroupId> = [GroupId(1)].into();
        assert_eq!(core.overseers_of(&g1).count(), 2);
    }

    #[test]
    fn ending_a_session_drops_its_sockets_only() {
        let mut core = Core::default();
        let me = AgentId(7);
        let (tx_a, mut rx_a) = mpsc::channel(8);
        let (tx_b, mut rx_b) = mpsc::channel(8);
        core.attach(me, "tab-a", None, true, tx_a);
        core.attach(me, "tab-b", None, true, tx_b);
        assert_eq!(core.end_session("tab-a"), 1);
        assert_eq!(core.end_session("tab-a"), 0);
        core.push(me, &json!({"n": 1}));
        assert!(rx_a.try_recv().is_err(), "queue ended");
        assert!(rx_b.try_recv().is_ok());
        assert_eq!(core.counts(), (1, 1));
    }
}
