//! The table of every XRPC method this server answers: NSID, kind and handler, with the body
//! limit a procedure needs. [`crate::xrpc::router`] is built from it, and [`method_list`] lets a
//! test walk it against the bundled lexicons.

use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::routing::{MethodRouter, get, post};

use super::{AppState, admin, bsky, email, identity, import, migration, repo, server, sync};

/// Body limit for record writes: the reference PDS's 1,000,000-byte JSON limit.
const RECORD_BODY_LIMIT: usize = 1_000_000;

/// How a method is called (the lexicon's `query` or `procedure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodKind {
    /// HTTP GET with query parameters.
    Query,
    /// HTTP POST with an optional body.
    Procedure,
}

/// One method: its NSID, its kind and its route.
pub(super) struct Method {
    pub(super) nsid: &'static str,
    pub(super) kind: MethodKind,
    pub(super) route: MethodRouter<AppState>,
}

fn query<H: Handler<T, AppState>, T: 'static>(nsid: &'static str, handler: H) -> Method {
    Method {
        nsid,
        kind: MethodKind::Query,
        route: get(handler),
    }
}

fn procedure<H: Handler<T, AppState>, T: 'static>(nsid: &'static str, handler: H) -> Method {
    Method {
        nsid,
        kind: MethodKind::Procedure,
        route: post(handler),
    }
}

/// A procedure whose body may be larger than the default limit.
fn large<H: Handler<T, AppState>, T: 'static>(
    nsid: &'static str,
    handler: H,
    limit: DefaultBodyLimit,
) -> Method {
    Method {
        nsid,
        kind: MethodKind::Procedure,
        route: post(handler).layer(limit),
    }
}

/// Every method, in NSID namespace order.
pub(super) fn table() -> Vec<Method> {
    let records = || DefaultBodyLimit::max(RECORD_BODY_LIMIT);
    vec![
        // com.atproto.server
        query("com.atproto.server.describeServer", server::describe_server),
        procedure("com.atproto.server.createAccount", server::create_account),
        procedure(
            "com.atproto.server.createSession",
            server::create_session_handler,
        ),
        query("com.atproto.server.getSession", server::get_session),
        procedure("com.atproto.server.refreshSession", server::refresh_session),
        procedure("com.atproto.server.deleteSession", server::delete_session),
        query(
            "com.atproto.server.getServiceAuth",
            server::get_service_auth,
        ),
        procedure(
            "com.atproto.server.createAppPassword",
            server::create_app_password,
        ),
        query(
            "com.atproto.server.listAppPasswords",
            server::list_app_passwords,
        ),
        procedure(
            "com.atproto.server.revokeAppPassword",
            server::revoke_app_password,
        ),
        procedure(
            "com.atproto.server.activateAccount",
            server::activate_account,
        ),
        procedure(
            "com.atproto.server.deactivateAccount",
            server::deactivate_account,
        ),
        query(
            "com.atproto.server.checkAccountStatus",
            server::check_account_status,
        ),
        procedure("com.atproto.server.deleteAccount", server::delete_account),
        procedure(
            "com.atproto.server.requestAccountDelete",
            email::request_account_delete,
        ),
        procedure(
            "com.atproto.server.requestEmailConfirmation",
            email::request_email_confirmation,
        ),
        procedure("com.atproto.server.confirmEmail", email::confirm_email),
        procedure(
            "com.atproto.server.requestEmailUpdate",
            email::request_email_update,
        ),
        procedure("com.atproto.server.updateEmail", email::update_email),
        procedure(
            "com.atproto.server.requestPasswordReset",
            email::request_password_reset,
        ),
        procedure("com.atproto.server.resetPassword", email::reset_password),
        procedure(
            "com.atproto.server.createInviteCode",
            server::create_invite_code,
        ),
        procedure(
            "com.atproto.server.createInviteCodes",
            server::create_invite_codes,
        ),
        query(
            "com.atproto.server.getAccountInviteCodes",
            server::get_account_invite_codes,
        ),
        // com.atproto.repo
        large(
            "com.atproto.repo.createRecord",
            repo::create_record,
            records(),
        ),
        large("com.atproto.repo.putRecord", repo::put_record, records()),
        procedure("com.atproto.repo.deleteRecord", repo::delete_record),
        large(
            "com.atproto.repo.applyWrites",
            repo::apply_writes,
            records(),
        ),
        query("com.atproto.repo.getRecord", repo::get_record),
        query("com.atproto.repo.listRecords", repo::list_records),
        query("com.atproto.repo.describeRepo", repo::describe_repo),
        // Uploads are checked while streaming, against PDS_BLOB_UPLOAD_LIMIT.
        large(
            "com.atproto.repo.uploadBlob",
            repo::upload_blob,
            DefaultBodyLimit::disable(),
        ),
        // Spooled to disk while streaming, against PDS_MAX_REPO_IMPORT_SIZE.
        large(
            "com.atproto.repo.importRepo",
            import::import_repo,
            DefaultBodyLimit::disable(),
        ),
        // com.atproto.sync
        query("com.atproto.sync.getRepo", sync::get_repo),
        query("com.atproto.sync.getCheckout", sync::get_repo),
        query("com.atproto.sync.getLatestCommit", sync::get_latest_commit),
        query("com.atproto.sync.getHead", sync::get_head),
        query("com.atproto.sync.getRecord", sync::get_record),
        query("com.atproto.sync.getBlocks", sync::get_blocks),
        query("com.atproto.sync.listRepos", sync::list_repos),
        query("com.atproto.sync.getRepoStatus", sync::get_repo_status),
        query("com.atproto.sync.getBlob", sync::get_blob),
        query("com.atproto.sync.listBlobs", sync::list_blobs),
        // com.atproto.identity
        query(
            "com.atproto.identity.resolveHandle",
            identity::resolve_handle,
        ),
        procedure("com.atproto.identity.updateHandle", identity::update_handle),
        // com.atproto.admin
        query("com.atproto.admin.getAccountInfo", admin::get_account_info),
        query(
            "com.atproto.admin.getAccountInfos",
            admin::get_account_infos,
        ),
        procedure(
            "com.atproto.admin.updateSubjectStatus",
            admin::update_subject_status,
        ),
        procedure(
            "com.atproto.admin.updateAccountHandle",
            admin::update_account_handle,
        ),
        procedure(
            "com.atproto.admin.updateAccountPassword",
            admin::update_account_password,
        ),
        procedure("com.atproto.admin.deleteAccount", admin::delete_account),
        query("com.atproto.admin.getInviteCodes", admin::get_invite_codes),
        procedure(
            "com.atproto.admin.disableInviteCodes",
            admin::disable_invite_codes,
        ),
        procedure(
            "com.atproto.admin.disableAccountInvites",
            admin::disable_account_invites,
        ),
        procedure(
            "com.atproto.admin.enableAccountInvites",
            admin::enable_account_invites,
        ),
        procedure(
            "com.atproto.admin.updateAccountEmail",
            admin::update_account_email,
        ),
        procedure("com.atproto.admin.sendEmail", admin::send_email),
        query(
            "com.atproto.admin.getSubjectStatus",
            admin::get_subject_status,
        ),
        // Moving accounts (migration)
        procedure(
            "com.atproto.server.reserveSigningKey",
            migration::reserve_signing_key,
        ),
        query(
            "com.atproto.identity.getRecommendedDidCredentials",
            migration::get_recommended_did_credentials,
        ),
        procedure(
            "com.atproto.identity.requestPlcOperationSignature",
            migration::request_plc_operation_signature,
        ),
        procedure(
            "com.atproto.identity.signPlcOperation",
            migration::sign_plc_operation,
        ),
        procedure(
            "com.atproto.identity.submitPlcOperation",
            migration::submit_plc_operation,
        ),
        query(
            "com.atproto.repo.listMissingBlobs",
            migration::list_missing_blobs,
        ),
        // com.atproto.temp
        query(
            "com.atproto.temp.checkSignupQueue",
            server::check_signup_queue,
        ),
        // app.bsky: preferences are the PDS's own; the rest of these go to the AppView, patched
        // with the caller's newest records (read-after-write). Every other app.bsky method is
        // proxied by the router's fallback.
        query("app.bsky.actor.getPreferences", bsky::get_preferences),
        procedure("app.bsky.actor.putPreferences", bsky::put_preferences),
        query("app.bsky.actor.getProfile", bsky::get_profile),
        query("app.bsky.actor.getProfiles", bsky::get_profiles),
        query("app.bsky.feed.getActorLikes", bsky::get_actor_likes),
        query("app.bsky.feed.getAuthorFeed", bsky::get_author_feed),
        query("app.bsky.feed.getPostThread", bsky::get_post_thread),
        query("app.bsky.feed.getTimeline", bsky::get_timeline),
    ]
}

/// The methods whose bodies can be larger than Lambda carries (6 MB each way): what the bulk
/// task serves ([`crate::xrpc::bulk_router`]) and the deployment routes to it.
pub const BULK_METHODS: &[&str] = &[
    "com.atproto.repo.importRepo",
    "com.atproto.repo.uploadBlob",
    "com.atproto.sync.getBlob",
];

/// The NSID and kind of every method [`crate::xrpc::router`] serves (the firehose's
/// `subscribeRepos` is `crate::firehose`'s).
pub fn method_list() -> Vec<(&'static str, MethodKind)> {
    table().into_iter().map(|m| (m.nsid, m.kind)).collect()
}
