//! `profundo serve`: every trained model behind one HTTP inference server.
//!
//! - The [Open Inference Protocol v2](https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/)
//!   (REST/JSON), as KServe, NVIDIA Triton and Seldon MLServer speak it: health and
//!   readiness probes, server and model metadata, `infer` ([`oip`]).
//! - Plain routes whose answers are exactly the CLI's `--json` output ([`routes`]).
//! - Dynamic batching per model on a worker thread that owns the model ([`batcher`]).
//! - Limits: body size (413), a full queue or too many requests (503 with `Retry-After`),
//!   a slow request (504), a panic (500); every error is `{"error": "..."}` ([`layers`]).
//! - Prometheus metrics at `/metrics` ([`telemetry`]), the OpenAPI document at
//!   `/openapi.json`, derived from the handlers ([`openapi`]).
//! - SIGTERM/SIGINT: stop accepting, finish what is in flight, return.
//!
//! [`load`] is the load generator behind `profundo bench serve`.

pub mod batcher;
pub mod error;
pub mod faces;
pub mod layers;
pub mod load;
pub mod models;
pub mod oip;
pub mod openapi;
pub mod recommend;
pub mod routes;
pub mod signs;
pub mod speech;
pub mod telemetry;
pub mod translate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use profundo_core::backend::BackendKind;

pub use error::{ApiError, ServeError};

use crate::batcher::BatchConfig;
use crate::models::Models;

/// profundo's version, served as the server's and each model's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Everything `profundo serve` is started with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// `(name, path)` of each model: a model directory, a run directory or `runs/<pipeline>`.
    pub models: Vec<(String, PathBuf)>,
    /// `(model name, gallery file)` for face models.
    pub galleries: Vec<(String, PathBuf)>,
    /// The address to bind (port 0: any free port).
    pub addr: SocketAddr,
    /// Dynamic batching, per model.
    pub batch: BatchConfig,
    /// The largest request body.
    pub max_body_bytes: usize,
    /// The longest a request may take.
    pub timeout: Duration,
    /// The most requests in progress at once; more are refused with 503.
    pub concurrency: usize,
    /// The backend the models run on.
    pub backend: BackendKind,
}

/// Starts the server and serves until SIGTERM or SIGINT (or a model fails to load).
/// Prints `listening on http://HOST:PORT` on standard output once it accepts connections.
pub fn serve(config: ServeConfig) -> Result<(), ServeError> {
    runtime()?.block_on(async {
        let server = Server::bind(&config).await?;
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "listening on http://{}", server.local_addr());
            let _ = out.flush();
        }
        let stop = shutdown_signal();
        server.run_until(stop).await
    })
}

/// The multi-threaded tokio runtime the server runs on.
pub fn runtime() -> Result<tokio::runtime::Runtime, ServeError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("serve-io")
        .build()
        .map_err(|source| ServeError::Io {
            context: "cannot start the async runtime".into(),
            source,
        })
}

/// A bound server, its models loading.
pub struct Server {
    listener: tokio::net::TcpListener,
    local: SocketAddr,
    state: Arc<routes::AppState>,
    app: axum::Router,
}

impl Server {
    /// Checks the models, starts loading them, and binds the address.
    pub async fn bind(config: &ServeConfig) -> Result<Self, ServeError> {
        // The recorder first: a model worker takes its metric handles when its model has
        // loaded, and a handle taken before the recorder exists records nothing.
        let metrics = telemetry::prometheus()?;
        let models = Models::start(config)?;
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|source| ServeError::Io {
                context: format!("cannot listen on {}", config.addr),
                source,
            })?;
        let local = listener.local_addr().map_err(|source| ServeError::Io {
            context: "cannot read the bound address".into(),
            source,
        })?;
        let state = Arc::new(routes::AppState { models, metrics });
        let limits = layers::Limits {
            max_body_bytes: config.max_body_bytes,
            timeout: config.timeout,
            concurrency: config.concurrency,
        };
        let app = layers::apply(routes::router(state.clone()), limits);
        Ok(Self {
            listener,
            local,
            state,
            app,
        })
    }

    /// The address it listens on (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Waits until every model has loaded; the error of the first that failed.
    pub async fn wait_ready(&self) -> Result<(), ServeError> {
        loop {
            if let Some((name, message)) = self.state.models.load_failure() {
                return Err(ServeError::Model { name, message });
            }
            if self.state.models.all_ready() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Serves until `stop` resolves or a model fails to load, then finishes the requests
    /// in flight and returns.
    pub async fn run_until(
        self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        tracing::info!(
            "serving {} model(s) on http://{}",
            self.state.models.names().len(),
            self.local
        );
        let failure: Arc<std::sync::OnceLock<ServeError>> = Arc::default();
        let watch = (self.state.clone(), failure.clone());
        let until = async move {
            let load_failed = async {
                loop {
                    if let Some((name, message)) = watch.0.models.load_failure() {
                        let _ = watch.1.set(ServeError::Model { name, message });
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            };
            tokio::select! {
                () = stop => {}
                () = load_failed => tracing::error!("a model failed to load: stopping"),
            }
        };
        axum::serve(self.listener, self.app)
            .with_graceful_shutdown(until)
            .await
            .map_err(|source| ServeError::Io {
                context: "the server failed".into(),
                source,
            })?;
        drop(self.state);
        match Arc::try_unwrap(failure).ok().and_then(|f| f.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("interrupted: finishing requests in flight"),
        () = term => tracing::info!("terminated: finishing requests in flight"),
    }
}
