//! Assembling the application: one builder for production and tests.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, middleware, web};

use crate::bus::{Bus, MemoryBus, RedisBus};
use crate::channels::Channels;
use crate::channels::kf_sync::{KfSync, KfSyncer};
use crate::config::{Settings, redact_url};
use crate::conversation::ingest::Ingestor;
use crate::conversation::outbox::Outbox;
use crate::http_error::{ApiError, Code};
use crate::metrics::{self, Metrics};
use crate::routing::region::RegionResolver;
use crate::state::AppState;
use crate::store::{Store, StoreError};
use crate::workers::Workers;

/// Why Kefu could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("event bus: {0}")]
    Bus(#[from] crate::bus::RedisBusError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
    #[error("account crypto: {0}")]
    Crypto(#[from] crate::wechat::CryptoError),
    #[error("access-token store: {0}")]
    TokenStore(#[from] crate::cluster::RedisTokenStoreError),
}

/// A running Kefu: bound, migrated, workers started.
pub struct Application {
    port: u16,
    metrics_port: Option<u16>,
    server: Server,
    metrics_server: Option<Server>,
    workers: Workers,
    state: AppState,
    setup_link: Option<String>,
}

fn bind(host: &str, port: u16) -> Result<TcpListener, StartError> {
    let addr = format!("{host}:{port}");
    TcpListener::bind(&addr).map_err(|source| StartError::Bind { addr, source })
}

impl Application {
    /// Connects to the database and applies migrations, connects the bus,
    /// binds (port 0 picks a free port), and starts the workers.
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let settings = Arc::new(settings);

        let store = Store::connect(&settings.database).await?;
        store.migrate().await?;
        store.sync_accounts(&settings.accounts).await?;
        store.sync_sites(&settings.sites).await?;
        tracing::info!(database = %redact_url(settings.database.url.expose()), "database ready");

        let bus: Bus = if settings.redis.enabled() {
            let bus =
                RedisBus::connect(settings.redis.url.expose(), settings.redis.prefix()).await?;
            tracing::info!(redis = %redact_url(settings.redis.url.expose()), "cluster bus on Redis");
            Arc::new(bus)
        } else {
            Arc::new(MemoryBus::new())
        };

        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(settings.limits.outbound_timeout_secs))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("kefu/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| StartError::Http(e.to_string()))?;

        let metrics = Metrics::new();
        let token_store = crate::cluster::token_store(&settings.redis).await?;
        let channels = Arc::new(Channels::new(&settings, &http, token_store)?);
        let mut workers = Workers::new();
        let outbound_ready = Arc::new(tokio::sync::Notify::new());
        let ingest = Ingestor::start(
            store.clone(),
            bus.clone(),
            settings.limits.ingest_max_batch,
            outbound_ready.clone(),
            &mut workers,
        );
        let media = crate::media::Media::new(
            store.clone(),
            channels.clone(),
            http.clone(),
            settings.media.clone(),
        );
        let outbox = Outbox::new(
            store.clone(),
            bus.clone(),
            channels.clone(),
            ingest.clone(),
            settings.outbox.clone(),
            outbound_ready,
        )
        .with_media(media.clone());
        if settings.outbox.enabled {
            outbox.start(&mut workers);
        }
        let kf_sync = KfSync::start(
            KfSyncer {
                store: store.clone(),
                bus: bus.clone(),
                channels: channels.clone(),
            },
            Duration::from_secs(settings.kf.poll_interval_secs),
            &mut workers,
        );
        media.start(&bus, &mut workers);
        let router = crate::routing::Router::new(settings.routing.require_shifts)
            .with_timings(metrics.routing_decision.clone());
        router.replace(store.router_data(chrono::Utc::now()).await?);
        let pipeline = crate::conversation::pipeline::Pipeline::new(
            store.clone(),
            bus.clone(),
            router.clone(),
            settings.routing.clone(),
        )
        .with_ingest(ingest.clone())
        .with_outbox(outbox.clone());
        pipeline.start(&mut workers);
        if crate::conversation::unionid::UnionidLinker::wanted(&channels) {
            crate::conversation::unionid::UnionidLinker::new(pipeline.clone(), channels.clone())
                .start(&bus, &mut workers);
        }
        crate::conversation::timeouts::Timeouts::new(pipeline.clone()).start(&mut workers);
        let queue = crate::routing::queue::Drainer::new(pipeline.clone());
        queue.start(&mut workers);
        let presence = crate::routing::presence::Presence::new(pipeline.clone(), queue.clone());
        presence.start(&mut workers);
        let regions = Arc::new(RegionResolver::load(&settings.routing.ip2region_path));
        let hub = crate::console::realtime::Hub::new(store.clone(), router.clone());
        hub.start(&bus, &mut workers);
        let search = crate::search::SearchIndex::new(store.clone());
        search.start(&mut workers);
        let widget = crate::channels::web::WidgetHub::new(store.clone(), &settings.widget);
        widget.start(&bus, &mut workers);
        let crm_webhook = crate::crm::webhook::Webhook::default();
        crm_webhook.start(
            store.clone(),
            http.clone(),
            settings.crm.clone(),
            &mut workers,
        );
        let state = AppState {
            store,
            bus,
            settings: settings.clone(),
            metrics: metrics.clone(),
            http,
            channels,
            ingest,
            kf_sync,
            outbox,
            media,
            regions,
            router,
            pipeline,
            queue,
            presence,
            hub,
            crm_replays: crate::crm::replay_cache(),
            search,
            widget,
            crm_webhook,
        };

        let listener = bind(&settings.server.host, settings.server.port)?;
        let port = listener
            .local_addr()
            .map_err(|source| StartError::Bind {
                addr: "?".into(),
                source,
            })?
            .port();
        let server = http_server(state.clone(), listener)?;

        let (metrics_server, metrics_port) = if settings.metrics.enabled {
            let l = bind(&settings.metrics.host, settings.metrics.port)?;
            let p = l
                .local_addr()
                .map_err(|source| StartError::Bind {
                    addr: "?".into(),
                    source,
                })?
                .port();
            (Some(metrics_server(metrics, l)?), Some(p))
        } else {
            (None, None)
        };

        let setup_link =
            crate::console::setup::issue_link_if_needed(&state.store, &settings.public_url(port))
                .await?;

        Ok(Self {
            port,
            metrics_port,
            server,
            metrics_server,
            workers,
            state,
            setup_link,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The one-time setup link, when no administrator exists yet.
    pub fn setup_link(&self) -> Option<&str> {
        self.setup_link.as_deref()
    }

    /// A handle that stops the server gracefully.
    pub fn handle(&self) -> AppHandle {
        AppHandle {
            server: self.server.handle(),
        }
    }

    /// What a person starting Kefu needs to know: where it listens.
    pub fn banner(&self) -> Vec<String> {
        let s = &self.state.settings;
        let base = s.public_url(self.port);
        let mut lines = vec![
            format!(
                "Kefu {} listening on {}:{}",
                env!("CARGO_PKG_VERSION"),
                s.server.host,
                self.port
            ),
            format!("  console:   {base}/"),
        ];
        for a in &s.accounts {
            lines.push(format!(
                "  callback:  {base}{}  ({}, {})",
                a.callback_path(),
                a.kind.as_str(),
                a.name
            ));
        }
        for site in &s.sites {
            lines.push(format!(
                "  web chat:  {base}/widget/chat?key={}  ({}; embed {base}/widget.js)",
                site.public_key, site.name
            ));
        }
        lines.push(format!("  health:    {base}/healthz  {base}/readyz"));
        if let Some(p) = self.metrics_port {
            lines.push(format!(
                "  metrics:   http://{}:{p}/metrics",
                s.metrics.host
            ));
        }
        lines.push(format!(
            "  database:  {}",
            redact_url(s.database.url.expose())
        ));
        if let Some(link) = &self.setup_link {
            lines.push(String::new());
            lines.push(
                "No administrator exists yet. Open this one-time link to choose the admin password"
                    .into(),
            );
            lines.push(format!(
                "(valid {} hours, replaced at the next start):",
                crate::console::setup::LINK_LIFETIME_HOURS
            ));
            lines.push(format!("  {link}"));
        }
        lines
    }

    /// Runs until the server stops (through [`AppHandle::stop`], or when
    /// `stop` resolves, e.g. [`shutdown_signal`]), then drains the workers
    /// and closes the database.
    pub async fn run_until_stopped(
        self,
        stop: impl Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        let Self {
            server,
            metrics_server,
            workers,
            state,
            ..
        } = self;
        let handle = server.handle();
        let metrics_handle = metrics_server.as_ref().map(|m| m.handle());
        let metrics_task = metrics_server.map(tokio::spawn);
        let mut server = std::pin::pin!(server);
        let result = tokio::select! {
            r = &mut server => r,
            _ = stop => {
                tracing::info!("shutdown requested: finishing in-flight requests");
                // The stop completes only while the server future is polled.
                let (_, r) = tokio::join!(handle.stop(true), server);
                r
            }
        };
        workers
            .shutdown(Duration::from_secs(
                state.settings.server.shutdown_timeout_secs,
            ))
            .await;
        if let Some(h) = metrics_handle {
            h.stop(true).await;
        }
        if let Some(t) = metrics_task {
            let _ = t.await;
        }
        state.bus.shutdown();
        state.store.close().await;
        tracing::info!("stopped");
        result
    }
}

/// Stops a running application.
#[derive(Clone)]
pub struct AppHandle {
    server: ServerHandle,
}

impl AppHandle {
    /// Graceful: in-flight requests finish.
    pub async fn stop(&self) {
        self.server.stop(true).await;
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is
/// called, not when it is first polled, so a signal that arrives right after
/// start-up is not lost.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

fn http_server(state: AppState, listener: TcpListener) -> Result<Server, StartError> {
    let settings = state.settings.clone();
    let api_limit = settings.limits.api_body_bytes;
    let crm_limit = settings.crm.max_body_bytes;
    let callback_limit = settings.limits.callback_body_bytes;
    let data = web::Data::new(state.clone());
    let metrics = web::Data::new(state.metrics.clone());
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(metrics.clone())
            .app_data(web::PayloadConfig::new(api_limit))
            .app_data(
                web::FormConfig::default()
                    .limit(api_limit)
                    .error_handler(|e, _| body_error(e.to_string())),
            )
            .app_data(
                web::JsonConfig::default()
                    .limit(api_limit)
                    .error_handler(|e, _| body_error(e.to_string())),
            )
            .wrap(middleware::from_fn(metrics::track))
            .configure(|c| crate::channels::official_account::routes(c, callback_limit))
            .configure(|c| crate::channels::wecom::routes(c, callback_limit))
            .configure(crate::channels::web::api::routes)
            .configure(|c| crate::crm::routes(c, crm_limit))
            .configure(crate::console::routes)
            .configure(crate::media::routes)
            .configure(crate::channels::web::page::routes)
    })
    .listen(listener)
    .map_err(|source| StartError::Bind {
        addr: "listener".into(),
        source,
    })?
    .disable_signals()
    .shutdown_timeout(settings.server.shutdown_timeout_secs);
    if settings.server.workers > 0 {
        server = server.workers(settings.server.workers);
    }
    Ok(server.run())
}

fn body_error(reason: String) -> actix_web::Error {
    let code = if reason.contains("overflow")
        || reason.contains("too large")
        || reason.contains("limit")
    {
        Code::PayloadTooLarge
    } else {
        Code::BadRequest
    };
    ApiError::new(code, reason).into()
}

fn metrics_server(metrics: Arc<Metrics>, listener: TcpListener) -> Result<Server, StartError> {
    let data = web::Data::new(metrics);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/metrics", web::get().to(metrics::serve_metrics))
    })
    .listen(listener)
    .map_err(|source| StartError::Bind {
        addr: "metrics listener".into(),
        source,
    })?
    .workers(1)
    .disable_signals()
    .shutdown_timeout(5)
    .run())
}
