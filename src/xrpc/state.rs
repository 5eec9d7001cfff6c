//! [`AppState`]: what every handler shares — the configuration and the services the root
//! (`crate::app`) built — and [`ExportState`], the smaller part the repo exports need.

use std::sync::Arc;

use axum::extract::FromRef;

use super::config::ServerConfig;
use super::limits::RateLimiter;
use crate::accounts::{AccountService, AccountsConfig};
use crate::identity::{PlcClient, Resolver};
use crate::lexicon::Lexicons;
use crate::mail::Mailer;
use crate::oauth::AuthorizationServer;
use crate::storage::{BlobStore, BlockCache, BlockView, Storage};
use crate::tid::TidClock;

/// The running services a server is given (built once, by `crate::app`).
#[derive(Clone, Debug)]
pub struct Services {
    /// Repos, blocks, events and account data.
    pub storage: Arc<dyn Storage>,
    /// Blob bytes.
    pub blobs: Arc<dyn BlobStore>,
    /// DID and handle resolution (and the PLC directory client built on it).
    pub resolver: Arc<Resolver>,
    /// The process's block cache.
    pub cache: BlockCache,
    /// The client for calls to other services (service proxying), guarded against private
    /// addresses ([`Resolver::service_client`]).
    pub http: reqwest::Client,
    /// Rate limits (counted in this process, or shared through storage).
    pub limits: Arc<RateLimiter>,
    /// Outgoing e-mail; None when this server sends none.
    pub mailer: Option<Arc<dyn Mailer>>,
}

/// Shared server state; cloning is cheap.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    config: ServerConfig,
    services: Services,
    clock: TidClock,
    plc: PlcClient,
    accounts: AccountsConfig,
    oauth: AuthorizationServer,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("storage", &self.0.services.storage)
            .field("hostname", &self.0.config.hostname)
            .finish()
    }
}

impl AppState {
    /// State for `config` over `services`.
    pub fn new(config: ServerConfig, services: Services) -> AppState {
        let plc = PlcClient::new(services.resolver.clone());
        let accounts = AccountsConfig {
            handle_domains: config.handle_domains.clone(),
            invite_required: config.invite_required,
            public_url: config.public_url.clone(),
            hostname: config.hostname.clone(),
            plc_rotation_key: config.plc_rotation_key.clone(),
        };
        let oauth = AuthorizationServer::new(
            &config.public_url,
            &config.service_did,
            &config.jwt_secret,
            services.http.clone(),
        );
        AppState(Arc::new(Inner {
            config,
            services,
            clock: TidClock::random(),
            plc,
            accounts,
            oauth,
        }))
    }

    /// The client for calls to other services.
    pub fn http(&self) -> &reqwest::Client {
        &self.0.services.http
    }

    /// The mailer, if this server sends e-mail.
    pub fn mailer(&self) -> Option<&dyn Mailer> {
        self.0.services.mailer.as_deref()
    }

    /// The rate limiter.
    pub fn limits(&self) -> &RateLimiter {
        &self.0.services.limits
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.0.config
    }

    /// The storage backend.
    pub fn storage(&self) -> &dyn Storage {
        &*self.0.services.storage
    }

    /// The storage backend, shared.
    pub fn storage_arc(&self) -> Arc<dyn Storage> {
        self.0.services.storage.clone()
    }

    /// The blob store.
    pub fn blobs(&self) -> &dyn BlobStore {
        &*self.0.services.blobs
    }

    /// The process's block cache.
    pub fn cache(&self) -> &BlockCache {
        &self.0.services.cache
    }

    /// A fresh view of the block cache for one operation (see [`BlockView`]).
    pub fn blocks(&self) -> BlockView {
        self.0.services.cache.view()
    }

    /// The TID clock for record keys and revs.
    pub fn clock(&self) -> &TidClock {
        &self.0.clock
    }

    /// The identity resolver.
    pub fn resolver(&self) -> &Resolver {
        &self.0.services.resolver
    }

    /// The PLC directory client.
    pub fn plc(&self) -> &PlcClient {
        &self.0.plc
    }

    /// The account flows over this server's services.
    pub fn accounts(&self) -> AccountService<'_> {
        AccountService::new(
            self.storage(),
            self.cache(),
            self.clock(),
            self.plc(),
            self.resolver(),
            &self.0.accounts,
        )
    }

    /// The OAuth authorization server.
    pub fn oauth(&self) -> &AuthorizationServer {
        &self.0.oauth
    }

    /// The bundled lexicons.
    pub fn lexicons(&self) -> &'static Lexicons {
        Lexicons::bundled()
    }
}

/// What the whole-repo exports (`getRepo`, `getCheckout`) need: storage and the block cache, no
/// configuration and no secrets, so the firehose task can serve them too.
#[derive(Clone, Debug)]
pub struct ExportState {
    /// Repos and blocks (only read).
    pub storage: Arc<dyn Storage>,
    /// The process's block cache.
    pub cache: BlockCache,
}

impl FromRef<AppState> for ExportState {
    fn from_ref(state: &AppState) -> ExportState {
        ExportState {
            storage: state.storage_arc(),
            cache: state.cache().clone(),
        }
    }
}
