//! [`router`]: the method table, the well-known routes, the fallbacks, and the layers every
//! request passes through.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::http::{Request, Response, StatusCode};
use axum::routing::{get, post};
use tower_http::cors::CorsLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;

use super::{AppState, ExportState, XrpcError, limits, methods, oauth, proxy, sync, well_known};

/// Body limit for every JSON procedure without a limit of its own.
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

/// The router for every XRPC method and well-known route; any other `/xrpc/` call is proxied to
/// the service that answers it (`proxy`).
///
/// Layers, outermost first: the request span (method NSID, DID once a token names one, status
/// and latency; one log line per request), CORS (`*`, as atproto clients in browsers need), the
/// rate-limit headers, then the body limits (each method's own, else 150 KB).
pub fn router() -> Router<AppState> {
    let router = Router::new()
        .route("/", get(well_known::root))
        .route("/.well-known/atproto-did", get(well_known::atproto_did))
        .route("/.well-known/did.json", get(well_known::did_json))
        .route(
            "/.well-known/oauth-protected-resource",
            get(oauth::protected_resource),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(oauth::authorization_server),
        )
        .route("/oauth/par", post(oauth::par))
        .route(
            "/oauth/authorize",
            get(oauth::authorize_page).post(oauth::authorize_submit),
        )
        .route("/oauth/token", post(oauth::token))
        .route("/oauth/revoke", post(oauth::revoke));
    with_methods(router, methods::table()).fallback(proxy::catch_all)
}

/// The router of the bulk task: only [`methods::BULK_METHODS`] (and `/xrpc/_health`), with the
/// same layers as [`router`]; it proxies nothing. It needs the JWT secret to check sessions,
/// and no other secret.
pub fn bulk_router() -> Router<AppState> {
    let bulk = methods::table()
        .into_iter()
        .filter(|m| methods::BULK_METHODS.contains(&m.nsid));
    with_methods(Router::new(), bulk)
}

fn with_methods(
    router: Router<AppState>,
    methods: impl IntoIterator<Item = methods::Method>,
) -> Router<AppState> {
    let mut router = router.route("/xrpc/_health", get(well_known::health));
    for method in methods {
        router = router.route(&x(method.nsid), method.route);
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(DEFAULT_BODY_LIMIT))
        .layer(axum::middleware::from_fn(limits::headers))
        .layer(cors())
        .layer(request_spans())
}

/// Permissive CORS (`*`), as atproto clients in browsers need, with day-long preflight caching;
/// every router a deployment exposes uses it (the firehose task's too).
pub fn cors() -> CorsLayer {
    // `permissive` exposes every response header (`*`), the `RateLimit-*` ones included.
    CorsLayer::permissive().max_age(Duration::from_secs(86400))
}

/// The trace layer [`request_spans`] builds.
type RequestSpans = TraceLayer<
    tower_http::classify::SharedClassifier<tower_http::classify::ServerErrorsAsFailures>,
    fn(&Request<Body>) -> Span,
    (),
    fn(&Response<Body>, Duration, &Span),
>;

/// One span per request, named for the XRPC method; a line when it is answered.
fn request_spans() -> RequestSpans {
    TraceLayer::new_for_http()
        .make_span_with(request_span as fn(&Request<Body>) -> Span)
        .on_request(())
        .on_response(response_line as fn(&Response<Body>, Duration, &Span))
}

fn request_span(request: &Request<Body>) -> Span {
    let path = request.uri().path();
    let method = path.strip_prefix("/xrpc/").unwrap_or(path);
    tracing::info_span!(
        "xrpc",
        method = %method,
        did = tracing::field::Empty,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    )
}

fn response_line(response: &Response<Body>, latency: Duration, span: &Span) {
    let status = response.status().as_u16();
    span.record("status", status);
    span.record("latency_ms", latency.as_secs_f64() * 1e3);
    tracing::info!(status, latency_ms = latency.as_secs_f64() * 1e3, "answered");
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
