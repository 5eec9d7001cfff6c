//! The XRPC server: one axum [`Router`] for every method, used as-is by the Lambda entry point,
//! the local server (`arroba serve`) and the tests, each supplying its own [`AppState`].
//!
//! Handlers are thin and grouped by NSID namespace (`server`, `repo`, `sync`, `identity`,
//! `admin`); they parse parameters with the syntax newtypes ([`extract`]), authenticate with
//! [`auth`], call `repo`/`storage`/`identity`, and map errors through [`XrpcError`], the one
//! place statuses and `{"error","message"}` bodies are chosen. The firehose's WebSocket route
//! is added by `crate::firehose`.

mod admin;
pub mod auth;
pub mod config;
mod error;
pub mod extract;
mod identity;
mod repo;
mod server;
mod state;
mod sync;
mod well_known;
mod writes;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::FromRef;
use axum::http::StatusCode;
use axum::routing::{get, post};
use tower_http::cors::CorsLayer;

pub use config::ServerConfig;
pub use error::XrpcError;
pub use state::{AppState, ExportState, Services};

/// Body limit for record writes: the reference PDS's 1,000,000-byte JSON limit.
const RECORD_BODY_LIMIT: usize = 1_000_000;
/// Body limit for every other JSON procedure.
const DEFAULT_BODY_LIMIT: usize = 150 * 1024;

fn x(nsid: &str) -> String {
    format!("/xrpc/{nsid}")
}

/// The whole-repo exports (`getRepo`, `getCheckout`), part of [`router`]. The firehose task
/// serves them too: their responses are unbounded, and Lambda caps a response at 6 MB, so a
/// deployment routes these paths to the task (docs/deploy.md). They only read storage, so their
/// state ([`ExportState`]) holds no configuration and no secret.
pub fn repo_export_routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    ExportState: FromRef<S>,
{
    Router::new()
        .route(&x("com.atproto.sync.getRepo"), get(sync::get_repo))
        .route(&x("com.atproto.sync.getCheckout"), get(sync::get_repo))
}

/// The router for every XRPC method and well-known route.
///
/// Layers, outermost first: CORS (`*`, as atproto clients in browsers need), then the per-route
/// body limits (record writes 1 MB, uploads checked while streaming against
/// `PDS_BLOB_UPLOAD_LIMIT`, everything else 150 KB).
pub fn router() -> Router<AppState> {
    let records = DefaultBodyLimit::max(RECORD_BODY_LIMIT);
    Router::new()
        .route("/", get(well_known::root))
        .route("/.well-known/atproto-did", get(well_known::atproto_did))
        .route("/.well-known/did.json", get(well_known::did_json))
        .route("/xrpc/_health", get(well_known::health))
        // com.atproto.server
        .route(
            &x("com.atproto.server.describeServer"),
            get(server::describe_server),
        )
        .route(
            &x("com.atproto.server.createAccount"),
            post(server::create_account),
        )
        .route(
            &x("com.atproto.server.createSession"),
            post(server::create_session_handler),
        )
        .route(
            &x("com.atproto.server.getSession"),
            get(server::get_session),
        )
        .route(
            &x("com.atproto.server.refreshSession"),
            post(server::refresh_session),
        )
        .route(
            &x("com.atproto.server.deleteSession"),
            post(server::delete_session),
        )
        .route(
            &x("com.atproto.server.getServiceAuth"),
            get(server::get_service_auth),
        )
        .route(
            &x("com.atproto.server.createAppPassword"),
            post(server::create_app_password),
        )
        .route(
            &x("com.atproto.server.listAppPasswords"),
            get(server::list_app_passwords),
        )
        .route(
            &x("com.atproto.server.revokeAppPassword"),
            post(server::revoke_app_password),
        )
        .route(
            &x("com.atproto.server.activateAccount"),
            post(server::activate_account),
        )
        .route(
            &x("com.atproto.server.deactivateAccount"),
            post(server::deactivate_account),
        )
        .route(
            &x("com.atproto.server.checkAccountStatus"),
            get(server::check_account_status),
        )
        .route(
            &x("com.atproto.server.deleteAccount"),
            post(server::delete_account),
        )
        .route(
            &x("com.atproto.server.createInviteCode"),
            post(server::create_invite_code),
        )
        .route(
            &x("com.atproto.server.createInviteCodes"),
            post(server::create_invite_codes),
        )
        // com.atproto.repo
        .route(
            &x("com.atproto.repo.createRecord"),
            post(repo::create_record).layer(records),
        )
        .route(
            &x("com.atproto.repo.putRecord"),
            post(repo::put_record).layer(records),
        )
        .route(
            &x("com.atproto.repo.deleteRecord"),
            post(repo::delete_record),
        )
        .route(
            &x("com.atproto.repo.applyWrites"),
            post(repo::apply_writes).layer(records),
        )
        .route(&x("com.atproto.repo.getRecord"), get(repo::get_record))
        .route(&x("com.atproto.repo.listRecords"), get(repo::list_records))
        .route(
            &x("com.atproto.repo.describeRepo"),
            get(repo::describe_repo),
        )
        .route(
            &x("com.atproto.repo.uploadBlob"),
            post(repo::upload_blob).layer(DefaultBodyLimit::disable()),
        )
        // com.atproto.sync
        .merge(repo_export_routes())
        .route(
            &x("com.atproto.sync.getLatestCommit"),
            get(sync::get_latest_commit),
        )
        .route(&x("com.atproto.sync.getHead"), get(sync::get_head))
        .route(&x("com.atproto.sync.getRecord"), get(sync::get_record))
        .route(&x("com.atproto.sync.getBlocks"), get(sync::get_blocks))
        .route(&x("com.atproto.sync.listRepos"), get(sync::list_repos))
        .route(
            &x("com.atproto.sync.getRepoStatus"),
            get(sync::get_repo_status),
        )
        .route(&x("com.atproto.sync.getBlob"), get(sync::get_blob))
        .route(&x("com.atproto.sync.listBlobs"), get(sync::list_blobs))
        // com.atproto.identity
        .route(
            &x("com.atproto.identity.resolveHandle"),
            get(identity::resolve_handle),
        )
        .route(
            &x("com.atproto.identity.updateHandle"),
            post(identity::update_handle),
        )
        // com.atproto.admin
        .route(
            &x("com.atproto.admin.getAccountInfo"),
            get(admin::get_account_info),
        )
        .route(
            &x("com.atproto.admin.getAccountInfos"),
            get(admin::get_account_infos),
        )
        .route(
            &x("com.atproto.admin.updateSubjectStatus"),
            post(admin::update_subject_status),
        )
        .route(
            &x("com.atproto.admin.updateAccountHandle"),
            post(admin::update_account_handle),
        )
        .route(
            &x("com.atproto.admin.updateAccountPassword"),
            post(admin::update_account_password),
        )
        .route(
            &x("com.atproto.admin.deleteAccount"),
            post(admin::delete_account),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(DEFAULT_BODY_LIMIT))
        .layer(CorsLayer::permissive().max_age(std::time::Duration::from_secs(86400)))
}

async fn not_found(uri: axum::http::Uri) -> XrpcError {
    if uri.path().starts_with("/xrpc/") {
        XrpcError::new(
            StatusCode::NOT_IMPLEMENTED,
            "MethodNotImplemented",
            "Method Not Implemented",
        )
    } else {
        XrpcError::new(StatusCode::NOT_FOUND, "NotFound", "Not Found")
    }
}

async fn method_not_allowed() -> XrpcError {
    XrpcError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "InvalidRequest",
        "Incorrect HTTP method for this XRPC method",
    )
}
