//! Rate limits: named budgets of points per fixed window, counted per key (a client address, an
//! account, or both), the reference PDS's figures by default. [`RateLimiter`] counts in-process
//! (one server: `arroba serve`) or in storage, where every server process shares the counts
//! (DynamoDB: one conditional update per rule). A refused call is `429 RateLimitExceeded`; every
//! limited call answers with the `RateLimit-*` headers of its tightest rule ([`headers`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::{AppState, XrpcError};
use crate::storage::KvStore;

/// One budget: `points` per fixed window of `window_secs`, counted per key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Its name: the counter's prefix and the key in `PDS_RATE_LIMITS`.
    pub name: &'static str,
    /// The window, in seconds.
    pub window_secs: u64,
    /// Points per window by default.
    pub points: u64,
}

const MINUTES_5: u64 = 300;
const HOUR: u64 = 3600;
const DAY: u64 = 86_400;

/// Every rule, with the reference PDS's figures.
pub const RULES: &[Rule] = &[
    Rule {
        name: "create-session-5m",
        window_secs: MINUTES_5,
        points: 30,
    },
    Rule {
        name: "create-session-day",
        window_secs: DAY,
        points: 300,
    },
    Rule {
        name: "create-account-5m",
        window_secs: MINUTES_5,
        points: 100,
    },
    Rule {
        name: "update-handle-5m",
        window_secs: MINUTES_5,
        points: 10,
    },
    Rule {
        name: "update-handle-day",
        window_secs: DAY,
        points: 50,
    },
    Rule {
        name: "delete-account-5m",
        window_secs: MINUTES_5,
        points: 50,
    },
    Rule {
        name: "email-request-hour",
        window_secs: HOUR,
        points: 5,
    },
    Rule {
        name: "email-request-day",
        window_secs: DAY,
        points: 15,
    },
    Rule {
        name: "request-password-reset-hour",
        window_secs: HOUR,
        points: 15,
    },
    Rule {
        name: "request-password-reset-day",
        window_secs: DAY,
        points: 50,
    },
    Rule {
        name: "reset-password-5m",
        window_secs: MINUTES_5,
        points: 50,
    },
    Rule {
        name: "repo-write-hour",
        window_secs: HOUR,
        points: 5000,
    },
    Rule {
        name: "repo-write-day",
        window_secs: DAY,
        points: 35_000,
    },
];

/// What a call spends from: each budget is one or more [`RULES`], all charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// `createSession`, per identifier and client address.
    CreateSession,
    /// `createAccount`, per client address.
    CreateAccount,
    /// `updateHandle`, per account.
    UpdateHandle,
    /// `deleteAccount`, per client address.
    DeleteAccount,
    /// Record writes, per account: a create costs 3 points, an update 2, a delete 1.
    RepoWrite,
    /// A request that e-mails a code to the account (confirmation, address change, deletion),
    /// per account and method.
    EmailRequest,
    /// `requestPasswordReset`, per client address.
    RequestPasswordReset,
    /// `resetPassword`, per client address.
    ResetPassword,
}

impl Budget {
    fn rules(self) -> &'static [&'static str] {
        match self {
            Budget::CreateSession => &["create-session-5m", "create-session-day"],
            Budget::CreateAccount => &["create-account-5m"],
            Budget::UpdateHandle => &["update-handle-5m", "update-handle-day"],
            Budget::DeleteAccount => &["delete-account-5m"],
            Budget::RepoWrite => &["repo-write-hour", "repo-write-day"],
            Budget::EmailRequest => &["email-request-hour", "email-request-day"],
            Budget::RequestPasswordReset => {
                &["request-password-reset-hour", "request-password-reset-day"]
            }
            Budget::ResetPassword => &["reset-password-5m"],
        }
    }
}

/// Rate-limit settings (`PDS_RATE_LIMITS_*`, `PDS_RATE_LIMIT_BYPASS_*`, `PDS_CLIENT_IP_HEADER`).
#[derive(Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Whether limits apply (`PDS_RATE_LIMITS_ENABLED`, default true).
    pub enabled: bool,
    /// Points per window for each rule: [`RULES`]' figures, changed by `PDS_RATE_LIMITS`
    /// (`name=points,…`).
    pub points: HashMap<&'static str, u64>,
    /// A secret that, sent as `x-ratelimit-bypass`, skips every limit
    /// (`PDS_RATE_LIMIT_BYPASS_KEY`).
    pub bypass_key: Option<String>,
    /// Client addresses no limit applies to (`PDS_RATE_LIMIT_BYPASS_IPS`).
    pub bypass_ips: Vec<IpAddr>,
    /// The header the proxy in front puts the client's address in (`PDS_CLIENT_IP_HEADER`, e.g.
    /// `cloudfront-viewer-address`); without it, the connection's peer address.
    pub client_ip_header: Option<HeaderName>,
}

impl Default for RateLimitConfig {
    fn default() -> RateLimitConfig {
        RateLimitConfig {
            enabled: true,
            points: RULES.iter().map(|r| (r.name, r.points)).collect(),
            bypass_key: None,
            bypass_ips: Vec::new(),
            client_ip_header: None,
        }
    }
}

/// The bypass key is a secret: shown as `<redacted>`.
impl std::fmt::Debug for RateLimitConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitConfig")
            .field("enabled", &self.enabled)
            .field("points", &self.points)
            .field(
                "bypass_key",
                &self.bypass_key.as_ref().map(|_| "<redacted>"),
            )
            .field("bypass_ips", &self.bypass_ips)
            .field("client_ip_header", &self.client_ip_header)
            .finish()
    }
}

/// Where the counts live.
enum Counters {
    /// This process only: counter key → (window end, points used).
    InProcess(Mutex<HashMap<String, (i64, u64)>>),
    /// Storage every server process shares.
    Shared(Arc<dyn KvStore>),
}

/// Entries the in-process counters hold before expired windows are dropped.
const IN_PROCESS_PRUNE_AT: usize = 100_000;

/// The storage namespace of shared counters.
const NAMESPACE: &str = "ratelimit";

/// Counts points against the rules (see the module docs).
pub struct RateLimiter {
    config: RateLimitConfig,
    counters: Counters,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shared = matches!(self.counters, Counters::Shared(_));
        f.debug_struct("RateLimiter")
            .field("config", &self.config)
            .field("shared", &shared)
            .finish()
    }
}

/// One rule's state after a call: what the `RateLimit-*` headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleStatus {
    /// Points per window.
    pub limit: u64,
    /// Points left in this window.
    pub remaining: u64,
    /// When the window ends (Unix seconds).
    pub reset: i64,
    /// The window, in seconds.
    pub window_secs: u64,
}

tokio::task_local! {
    /// The tightest rule status of the request being answered, for [`headers`].
    static STATUS: RefCell<Option<RuleStatus>>;
}

impl RateLimiter {
    /// Counts in this process.
    pub fn in_process(config: RateLimitConfig) -> RateLimiter {
        RateLimiter {
            config,
            counters: Counters::InProcess(Mutex::new(HashMap::new())),
        }
    }

    /// Counts in `store`, shared by every process using it.
    pub fn shared(config: RateLimitConfig, store: Arc<dyn KvStore>) -> RateLimiter {
        RateLimiter {
            config,
            counters: Counters::Shared(store),
        }
    }

    /// The settings.
    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// Spends `points` from `budget` for `key` (every rule of the budget is charged); a 429
    /// if any rule has not got them left. Skipped when limits are off or `caller` bypasses them.
    pub async fn spend(
        &self,
        caller: &Caller,
        budget: Budget,
        key: &str,
        points: u64,
    ) -> Result<(), XrpcError> {
        if !self.config.enabled || caller.bypass || points == 0 {
            return Ok(());
        }
        let now = chrono::Utc::now().timestamp();
        let mut refused = false;
        for name in budget.rules() {
            let Some(rule) = RULES.iter().find(|r| r.name == *name) else {
                continue;
            };
            let limit = self.config.points.get(name).copied().unwrap_or(rule.points);
            let window = i64::try_from(rule.window_secs).unwrap_or(i64::MAX);
            let reset = (now / window + 1) * window;
            let counter = format!("{name}:{key}:{}", now / window);
            let used = self.add(&counter, points, limit, reset).await?;
            refused |= used.is_none();
            record(RuleStatus {
                limit,
                remaining: used.map_or(0, |u| limit.saturating_sub(u)),
                reset,
                window_secs: rule.window_secs,
            });
        }
        match refused {
            true => Err(XrpcError::rate_limited()),
            false => Ok(()),
        }
    }

    async fn add(
        &self,
        counter: &str,
        points: u64,
        limit: u64,
        reset: i64,
    ) -> Result<Option<u64>, XrpcError> {
        match &self.counters {
            Counters::Shared(store) => Ok(store
                .kv_add(NAMESPACE, counter, points, limit, reset)
                .await?),
            Counters::InProcess(map) => {
                let mut map = map.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if map.len() >= IN_PROCESS_PRUNE_AT {
                    let now = chrono::Utc::now().timestamp();
                    map.retain(|_, (end, _)| *end > now);
                }
                let entry = map.entry(counter.to_owned()).or_insert((reset, 0));
                let total = entry.1.saturating_add(points);
                if total > limit {
                    return Ok(None);
                }
                entry.1 = total;
                Ok(Some(total))
            }
        }
    }
}

/// Keeps the tightest status (fewest points left) of the request being answered.
fn record(status: RuleStatus) {
    let _ = STATUS.try_with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none_or(|s| status.remaining < s.remaining) {
            *cell = Some(status);
        }
    });
}

/// Middleware: adds `RateLimit-Limit`, `-Remaining`, `-Reset` and `-Policy` to the response of
/// a call that spent from a budget, and `Retry-After` to a 429.
pub async fn headers(request: Request, next: Next) -> Response {
    let (mut response, status) = STATUS
        .scope(RefCell::new(None), async {
            let response = next.run(request).await;
            (response, STATUS.with(|s| s.borrow_mut().take()))
        })
        .await;
    if let Some(status) = status {
        let set = |response: &mut Response, name: &'static str, value: String| {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        };
        set(&mut response, "ratelimit-limit", status.limit.to_string());
        set(
            &mut response,
            "ratelimit-remaining",
            status.remaining.to_string(),
        );
        set(&mut response, "ratelimit-reset", status.reset.to_string());
        set(
            &mut response,
            "ratelimit-policy",
            format!("{};w={}", status.limit, status.window_secs),
        );
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            let wait = (status.reset - chrono::Utc::now().timestamp()).max(1);
            set(&mut response, "retry-after", wait.to_string());
        }
    }
    response
}

/// The client's address as the Lambda entry point learns it (API Gateway's request context),
/// put in the request's extensions; the local server uses the socket's peer address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// Who is calling, for rate limits: the client's address and whether it bypasses limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The client's address, if known.
    pub ip: Option<IpAddr>,
    /// Whether no limit applies (bypass key or address).
    pub bypass: bool,
}

impl Caller {
    /// The address as a counter key (`unknown` when the server cannot tell).
    pub fn ip_key(&self) -> String {
        self.ip
            .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = XrpcError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, XrpcError> {
        let config = state.limits().config();
        let from_header = config
            .client_ip_header
            .as_ref()
            .and_then(|name| parts.headers.get(name))
            .and_then(|v| v.to_str().ok())
            .and_then(parse_address);
        let ip = from_header
            .or_else(|| parts.extensions.get::<ClientAddr>().map(|a| a.0))
            .or_else(|| {
                parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0.ip())
            });
        let bypass_key = config.bypass_key.as_deref().is_some_and(|key| {
            parts
                .headers
                .get("x-ratelimit-bypass")
                .is_some_and(|given| constant_time_eq(given.as_bytes(), key.as_bytes()))
        });
        let bypass_ip = ip.is_some_and(|ip| config.bypass_ips.contains(&ip));
        Ok(Caller {
            ip,
            bypass: bypass_key || bypass_ip,
        })
    }
}

/// An address as a proxy writes it: `ip`, `ip:port`, `[ipv6]:port`, or a list whose first
/// entry is the client (`X-Forwarded-For`).
fn parse_address(text: &str) -> Option<IpAddr> {
    let first = text.split(',').next()?.trim();
    if let Ok(ip) = first.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = first.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    // CloudFront writes an IPv6 viewer address unbracketed, with the port after the last colon.
    let (host, port) = first.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse().ok()
}

/// Equality that takes as long whatever the first differing byte (secrets).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_addresses_parse_in_every_form_a_proxy_writes() {
        for (text, ip) in [
            ("203.0.113.9", "203.0.113.9"),
            ("203.0.113.9:443", "203.0.113.9"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("2001:db8::1:443", "2001:db8::1:443"),
            ("198.51.100.2, 10.0.0.1", "198.51.100.2"),
        ] {
            assert_eq!(parse_address(text), ip.parse().ok(), "{text}");
        }
        assert_eq!(parse_address("not an address"), None);
    }

    #[test]
    fn every_budget_names_existing_rules() {
        for budget in [
            Budget::CreateSession,
            Budget::CreateAccount,
            Budget::UpdateHandle,
            Budget::DeleteAccount,
            Budget::RepoWrite,
            Budget::EmailRequest,
            Budget::RequestPasswordReset,
            Budget::ResetPassword,
        ] {
            for name in budget.rules() {
                assert!(RULES.iter().any(|r| r.name == *name), "{name}");
            }
        }
    }

    #[tokio::test]
    async fn in_process_counts_refuse_past_the_limit_and_report_the_tightest_rule() {
        let mut config = RateLimitConfig::default();
        config.points.insert("update-handle-5m", 2);
        let limiter = RateLimiter::in_process(config);
        let caller = Caller {
            ip: None,
            bypass: false,
        };
        let statuses = STATUS
            .scope(RefCell::new(None), async {
                let mut seen = Vec::new();
                for _ in 0..3 {
                    let result = limiter
                        .spend(&caller, Budget::UpdateHandle, "did:plc:a", 1)
                        .await;
                    seen.push((
                        result.map_err(|e| e.status()),
                        STATUS.with(|s| s.borrow_mut().take()).map(|s| s.remaining),
                    ));
                }
                seen
            })
            .await;
        assert_eq!(
            statuses,
            [
                (Ok(()), Some(1)),
                (Ok(()), Some(0)),
                (Err(StatusCode::TOO_MANY_REQUESTS), Some(0)),
            ]
        );
        let bypass = Caller {
            ip: None,
            bypass: true,
        };
        assert!(
            limiter
                .spend(&bypass, Budget::UpdateHandle, "did:plc:a", 1)
                .await
                .is_ok()
        );
    }
}
