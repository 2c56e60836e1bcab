//! What every service binary reads and starts the same way: where to listen, where the model
//! store is, telemetry; then the shared HTTP server around the service's own routes.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::web;

use crate::http::{Metrics, Readiness, run_server};
use crate::settings::{Env, ListenSettings};
use crate::store::StoreLocation;
use crate::telemetry::TelemetrySettings;

/// The settings every service has.
#[derive(Debug, Clone)]
pub struct CommonSettings {
    pub service: &'static str,
    pub listen: ListenSettings,
    pub store: StoreLocation,
    pub telemetry: TelemetrySettings,
}

impl CommonSettings {
    /// Reads `HOST`, `PORT`, `MODEL_STORE` (and the S3 variables), `RUST_LOG` and the
    /// OpenTelemetry variables. Problems are recorded in `env`; `None` when the store is invalid.
    pub fn read(env: &mut Env, service: &'static str, default_port: u16) -> Option<Self> {
        let listen = ListenSettings::from_env(env, default_port);
        let telemetry = TelemetrySettings::from_env(env, service);
        let store = StoreLocation::from_env(env)?;
        Some(Self {
            service,
            listen,
            store,
            telemetry,
        })
    }
}

/// A bound, built service: its port and its server future.
pub struct Application {
    port: u16,
    server: Server,
    /// Work that lives as long as the server (e.g. following model versions); stopped with it.
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl Application {
    /// Binds `settings.listen` (port 0 picks a free port, for tests) and builds the server.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub fn build<F>(
        settings: &CommonSettings,
        metrics: Metrics,
        readiness: Readiness,
        routes: F,
    ) -> std::io::Result<Self>
    where
        F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    {
        let listener = TcpListener::bind(settings.listen.address())?;
        let port = listener.local_addr()?.port();
        let server = run_server(listener, metrics, readiness, None, routes)?;
        tracing::info!(service = settings.service, port, "Listening.");
        Ok(Self {
            port,
            server,
            background: Vec::new(),
        })
    }

    /// Ties `task` to the server's life: it is aborted when the server stops.
    #[must_use]
    pub fn with_background_task(mut self, task: tokio::task::JoinHandle<()>) -> Self {
        self.background.push(task);
        self
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM or SIGINT, then drains in-flight requests.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.background
            .iter()
            .for_each(tokio::task::JoinHandle::abort);
        result
    }
}
