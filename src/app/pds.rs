//! [`Pds`]: the whole PDS built from a [`PdsConfig`] — what `arroba serve`, the Lambda and the
//! tests run.

use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::services::{
    aws_context, create_dev_backends, local_sealer, open_blobs, open_mailer, open_storage,
};
use super::{PdsConfig, StartError};
use crate::firehose::Hub;
use crate::identity::{IdentityConfig, Resolver};
use crate::mail::EmailTransport;
use crate::plc::PlcStore;
use crate::storage::{AwsContext, BlobStore, BlockCache, Storage, StorageKind};
use crate::xrpc::limits::RateLimiter;
use crate::xrpc::{AppState, Services};

/// A running PDS: its state, its firehose hub (unless built without one) and, in dev mode
/// without a configured directory, a local PLC directory.
#[derive(Debug)]
pub struct Pds {
    state: AppState,
    hub: Option<Arc<Hub>>,
    local_plc: Option<String>,
    shutdown: CancellationToken,
}

/// Builds a [`Pds`]; everything not given is built from the configuration.
#[derive(Debug)]
pub struct PdsBuilder {
    config: PdsConfig,
    aws: Option<AwsContext>,
    storage: Option<Arc<dyn Storage>>,
    blobs: Option<Arc<dyn BlobStore>>,
    firehose: bool,
    account_keys: bool,
    shutdown: CancellationToken,
}

impl PdsBuilder {
    /// Uses this AWS configuration for DynamoDB and S3 (the Lambda has one loaded already).
    pub fn aws(mut self, aws: AwsContext) -> PdsBuilder {
        self.aws = Some(aws);
        self
    }

    /// Uses this storage instead of the configured one (tests: a wrapper that injects faults,
    /// a backend with its metrics kept).
    pub fn storage(mut self, storage: Arc<dyn Storage>) -> PdsBuilder {
        self.storage = Some(storage);
        self
    }

    /// Uses this blob store instead of the configured one.
    pub fn blobs(mut self, blobs: Arc<dyn BlobStore>) -> PdsBuilder {
        self.blobs = Some(blobs);
        self
    }

    /// Runs no firehose hub (the Lambda: it cannot hold sockets, and the task serves them).
    pub fn without_firehose(mut self) -> PdsBuilder {
        self.firehose = false;
        self
    }

    /// Opens storage without key-encryption keys, so nothing in this process can read or write
    /// account keys (the bulk task: uploads and downloads never sign).
    pub fn without_account_keys(mut self) -> PdsBuilder {
        self.account_keys = false;
        self
    }

    /// Stops the background work (the hub, the local PLC directory, [`Pds::serve`]) when
    /// `shutdown` is cancelled.
    pub fn shutdown(mut self, shutdown: CancellationToken) -> PdsBuilder {
        self.shutdown = shutdown;
        self
    }

    /// Opens everything and starts the background work.
    pub async fn start(self) -> Result<Pds, StartError> {
        let PdsBuilder {
            mut config,
            aws,
            storage,
            blobs,
            firehose,
            account_keys,
            shutdown,
        } = self;
        let ses = config
            .server
            .email
            .as_ref()
            .is_some_and(|e| e.transport == EmailTransport::Ses);
        let aws = match (&storage, &blobs) {
            (Some(_), Some(_)) if !ses => aws,
            _ => aws_context(&config.storage, aws).await,
        };
        let aws = match (aws, ses) {
            (None, true) => Some(AwsContext::from_env().await),
            (aws, _) => aws,
        };
        let cache = BlockCache::new(config.storage.block_cache_bytes);
        if config.server.dev_mode {
            create_dev_backends(&config.storage, aws.as_ref()).await?;
        }
        let storage = match storage {
            Some(s) => s,
            None => {
                let sealer = match (account_keys, config.key_encryption_keys.clone()) {
                    (false, _) => None,
                    (true, Some(sealer)) => Some(sealer),
                    (true, None) => Some(local_sealer(&config.storage.data_directory)?),
                };
                open_storage(&config.storage, sealer, aws.as_ref(), &cache)?
            }
        };
        let blobs = blobs.unwrap_or_else(|| open_blobs(&config.storage, aws.as_ref()));
        let mut local_plc = None;
        if config.server.did_plc_url.is_none() {
            // Dev mode without a directory: run one in-process, so a machine with no internet
            // can create accounts.
            let url = start_local_plc(&config, shutdown.clone()).await?;
            config.server.did_plc_url = Some(url.clone());
            local_plc = Some(url);
        }
        let identity = IdentityConfig {
            plc_url: config.server.did_plc_url.clone().unwrap_or_default(),
            allow_private_addresses: config.server.dev_mode,
            ..IdentityConfig::default()
        };
        let resolver = Arc::new(Resolver::new(identity)?);
        let hub = match firehose {
            true => Some(
                Hub::start(
                    storage.clone(),
                    config.firehose.clone(),
                    shutdown.clone().cancelled_owned(),
                )
                .await?,
            ),
            false => None,
        };
        // A process that runs the firehose is long-lived: it collects unused blocks too.
        if let (Some(_), Some(every)) = (&hub, config.storage.block_collect_every) {
            tokio::spawn(crate::storage::run_block_collector(
                storage.clone(),
                cache.clone(),
                every,
                config.storage.block_collect_window,
                shutdown.clone(),
            ));
        }
        // Every Lambda instance and server process shares the counts on DynamoDB; the embedded
        // store serves one process, which counts in memory.
        let limits = match config.storage.kind {
            StorageKind::Dynamo { .. } => {
                RateLimiter::shared(config.server.rate_limits.clone(), storage.clone())
            }
            StorageKind::Disk => RateLimiter::in_process(config.server.rate_limits.clone()),
        };
        let mailer = open_mailer(
            config.server.email.as_ref(),
            &config.storage.data_directory,
            aws.as_ref(),
        )?;
        let services = Services {
            mailer,
            limits: Arc::new(limits),
            http: resolver.service_client()?,
            storage,
            blobs,
            resolver,
            cache,
        };
        Ok(Pds {
            state: AppState::new(config.server, services),
            hub,
            local_plc,
            shutdown,
        })
    }
}

async fn start_local_plc(
    config: &PdsConfig,
    shutdown: CancellationToken,
) -> Result<String, StartError> {
    let store = PlcStore::open(&config.storage.data_directory.join("plc"))?;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|source| StartError::Io {
            what: "binding the local PLC directory".into(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Io {
        what: "binding the local PLC directory".into(),
        source,
    })?;
    tokio::spawn(crate::plc::serve(
        listener,
        store,
        shutdown.cancelled_owned(),
    ));
    Ok(format!("http://{addr}"))
}

impl Pds {
    /// A builder for the PDS `config` describes.
    pub fn builder(config: PdsConfig) -> PdsBuilder {
        PdsBuilder {
            config,
            aws: None,
            storage: None,
            blobs: None,
            firehose: true,
            account_keys: true,
            shutdown: CancellationToken::new(),
        }
    }

    /// Every route: XRPC, the well-known files and, when the hub runs here, `subscribeRepos`.
    pub fn router(&self) -> Router {
        let xrpc = crate::xrpc::router().with_state(self.state.clone());
        match &self.hub {
            Some(hub) => xrpc.merge(crate::firehose::router(hub.clone())),
            None => xrpc,
        }
    }

    /// The state the handlers share.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The firehose hub, when it runs in this process.
    pub fn hub(&self) -> Option<&Arc<Hub>> {
        self.hub.as_ref()
    }

    /// The URL of the in-process PLC directory, when one was started.
    pub fn local_plc_url(&self) -> Option<&str> {
        self.local_plc.as_deref()
    }

    /// The token that stops this PDS's background work.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves [`Pds::router`] on `listener` until the shutdown token is cancelled; open
    /// firehose connections get a close frame first.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        let router = self.router();
        let shutdown = self.shutdown.clone();
        let hub = self.hub.clone();
        let writers = self.hub.clone();
        axum::serve(
            super::without_nagle(listener),
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.cancelled().await;
            if let Some(hub) = hub {
                hub.closing().await;
            }
        })
        .await?;
        if let Some(hub) = writers {
            hub.writers_finished(super::CLOSE_FRAMES_WAIT).await;
        }
        Ok(())
    }
}
