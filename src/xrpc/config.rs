//! [`ServerConfig`]: the XRPC server's `PDS_*` settings (identity, secrets, account rules,
//! limits), parsed and checked by a pure function over an [`Env`]. Storage settings are
//! `crate::storage::StorageConfig`; building services from both happens in `crate::app`.

use super::limits::{RULES, RateLimitConfig};
use crate::config::{ConfigError, Env};
use crate::crypto::{Algorithm, Keypair};
use crate::mail::EmailConfig;

/// A service this PDS forwards calls to (the AppView, the moderation and report services):
/// where it answers, and the DID its service-auth tokens are addressed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Base URL, without a trailing slash.
    pub url: String,
    /// The service's DID (a token's `aud`).
    pub did: String,
}

impl ServiceConfig {
    /// `<prefix>_URL` and `<prefix>_DID`, both or neither.
    fn from_env(
        env: &Env,
        url_name: &'static str,
        did_name: &'static str,
    ) -> Result<Option<ServiceConfig>, ConfigError> {
        match (env.get(url_name), env.get(did_name)) {
            (None, None) => Ok(None),
            (Some(_), None) => Err(ConfigError::Missing(did_name)),
            (None, Some(_)) => Err(ConfigError::Missing(url_name)),
            (Some(url), Some(did)) => {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(ConfigError::Invalid {
                        name: url_name,
                        why: format!("{url:?} is not an http(s) URL"),
                    });
                }
                crate::syntax::Did::parse(did).map_err(|_| ConfigError::Invalid {
                    name: did_name,
                    why: format!("{did:?} is not a DID"),
                })?;
                Ok(Some(ServiceConfig {
                    url: url.trim_end_matches('/').to_owned(),
                    did: did.to_owned(),
                }))
            }
        }
    }
}

/// The public PLC directory.
const PUBLIC_PLC_DIRECTORY: &str = "https://plc.directory";

/// Everything the XRPC handlers need to know about this server.
#[derive(Clone)]
pub struct ServerConfig {
    /// Public hostname (`PDS_HOSTNAME`).
    pub hostname: String,
    /// Listening port (`PDS_PORT`, default 2583).
    pub port: u16,
    /// The public base URL: `http://localhost:<port>` in dev mode, else `https://<hostname>`.
    pub public_url: String,
    /// The service DID (`PDS_SERVICE_DID`, default `did:web:<hostname>`).
    pub service_did: String,
    /// HS256 secret for session tokens (`PDS_JWT_SECRET`).
    pub jwt_secret: String,
    /// Password for `admin` Basic auth (`PDS_ADMIN_PASSWORD`); None in a process that serves no
    /// admin method (the bulk task), where admin credentials are always refused.
    pub admin_password: Option<String>,
    /// The PLC directory (`PDS_DID_PLC_URL`; None = run one in-process, dev mode only).
    pub did_plc_url: Option<String>,
    /// Whether createAccount needs an invite code (`PDS_INVITE_REQUIRED`).
    pub invite_required: bool,
    /// Domains under which handles may be created (`PDS_SERVICE_HANDLE_DOMAINS`, comma separated,
    /// each starting with a dot).
    pub handle_domains: Vec<String>,
    /// Largest blob upload in bytes (`PDS_BLOB_UPLOAD_LIMIT`, default 5 MiB).
    pub blob_upload_limit: usize,
    /// Largest `importRepo` CAR in bytes (`PDS_MAX_REPO_IMPORT_SIZE`, the reference PDS's name;
    /// default 100 MiB).
    pub max_import_size: u64,
    /// Whether `importRepo` is served (`PDS_ACCEPTING_REPO_IMPORTS`, default true).
    pub accepting_imports: bool,
    /// The AppView every `app.bsky.*` call goes to by default (`PDS_BSKY_APP_VIEW_URL` and
    /// `PDS_BSKY_APP_VIEW_DID`).
    pub app_view: Option<ServiceConfig>,
    /// Image URLs in read-after-write answers (`PDS_BSKY_APP_VIEW_CDN_URL_PATTERN`: `%s` is
    /// replaced by the preset, the DID and the CID, in that order); without it, getBlob URLs.
    pub app_view_cdn_url_pattern: Option<String>,
    /// The moderation service (`PDS_MOD_SERVICE_URL`/`_DID`): `tools.ozone.*` calls.
    pub mod_service: Option<ServiceConfig>,
    /// Where `com.atproto.moderation.createReport` goes (`PDS_REPORT_SERVICE_URL`/`_DID`; the
    /// moderation service if unset).
    pub report_service: Option<ServiceConfig>,
    /// Development mode (`PDS_DEV_MODE`).
    pub dev_mode: bool,
    /// The operator's PLC rotation key (`PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX`, the reference
    /// PDS's name): listed in the `rotationKeys` of every DID this PDS creates, after the account's
    /// own rotation key, so the operator can still update those DIDs if account keys are lost.
    pub plc_rotation_key: Option<Keypair>,
    /// Rate limits.
    pub rate_limits: RateLimitConfig,
    /// Outgoing e-mail (`PDS_EMAIL_*`); None: this server sends none.
    pub email: Option<EmailConfig>,
}

/// Secrets are shown as `<redacted>`: a configuration ends up in logs and panic messages.
impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = "<redacted>";
        f.debug_struct("ServerConfig")
            .field("hostname", &self.hostname)
            .field("port", &self.port)
            .field("public_url", &self.public_url)
            .field("service_did", &self.service_did)
            .field("jwt_secret", &redacted)
            .field("admin_password", &redacted)
            .field("did_plc_url", &self.did_plc_url)
            .field("invite_required", &self.invite_required)
            .field("handle_domains", &self.handle_domains)
            .field("blob_upload_limit", &self.blob_upload_limit)
            .field("max_import_size", &self.max_import_size)
            .field("accepting_imports", &self.accepting_imports)
            .field("app_view", &self.app_view)
            .field("app_view_cdn_url_pattern", &self.app_view_cdn_url_pattern)
            .field("mod_service", &self.mod_service)
            .field("report_service", &self.report_service)
            .field("dev_mode", &self.dev_mode)
            .field(
                "plc_rotation_key",
                &self.plc_rotation_key.as_ref().map(|_| redacted),
            )
            .field("rate_limits", &self.rate_limits)
            .field("email", &self.email)
            .finish()
    }
}

impl ServerConfig {
    /// Parses the environment. In production mode (`PDS_DEV_MODE` unset) `PDS_HOSTNAME`,
    /// `PDS_JWT_SECRET`, `PDS_ADMIN_PASSWORD` and `PDS_DID_PLC_URL` are required.
    pub fn from_env(env: &Env) -> Result<ServerConfig, ConfigError> {
        ServerConfig::parse(env, true)
    }

    /// Like [`ServerConfig::from_env`], for a process that serves no admin method: the admin
    /// password is neither required nor read.
    pub fn without_admin_from_env(env: &Env) -> Result<ServerConfig, ConfigError> {
        ServerConfig::parse(env, false)
    }

    fn parse(env: &Env, admin: bool) -> Result<ServerConfig, ConfigError> {
        let dev_mode = env.flag("PDS_DEV_MODE")?;
        let get = |name: &'static str, dev_default: &str| -> Result<String, ConfigError> {
            match env.get(name) {
                Some(v) => Ok(v.to_owned()),
                None if dev_mode => Ok(dev_default.to_owned()),
                None => Err(ConfigError::Missing(name)),
            }
        };
        let hostname = get("PDS_HOSTNAME", "localhost")?;
        let port = env.parse::<u16>("PDS_PORT", "a port")?.unwrap_or(2583);
        let jwt_secret = get("PDS_JWT_SECRET", "insecure-development-jwt-secret")?;
        if !dev_mode && jwt_secret.len() < 32 {
            return Err(ConfigError::Invalid {
                name: "PDS_JWT_SECRET",
                why: "use at least 32 characters".into(),
            });
        }
        let admin_password = match admin {
            true => Some(get("PDS_ADMIN_PASSWORD", "admin")?),
            false => None,
        };
        if !dev_mode && admin_password.as_ref().is_some_and(|p| p.len() < 16) {
            return Err(ConfigError::Invalid {
                name: "PDS_ADMIN_PASSWORD",
                why: "use at least 16 characters".into(),
            });
        }
        let did_plc_url = match env.get("PDS_DID_PLC_URL").or_else(|| env.get("PLC_HOST")) {
            Some(url) if url.starts_with("http") => Some(url.trim_end_matches('/').to_owned()),
            Some(host) => Some(format!("https://{host}")),
            None if dev_mode => None,
            None => return Err(ConfigError::Missing("PDS_DID_PLC_URL")),
        };
        // Dev mode's accounts live at http://localhost: registering them in the public
        // directory would publish DIDs nobody can reach (and that cannot be taken back).
        if dev_mode && did_plc_url.as_deref() == Some(PUBLIC_PLC_DIRECTORY) {
            return Err(ConfigError::Invalid {
                name: "PDS_DID_PLC_URL",
                why: "dev mode must not create DIDs in the public PLC directory".into(),
            });
        }
        let mut handle_domains = env.list("PDS_SERVICE_HANDLE_DOMAINS");
        if handle_domains.is_empty() {
            handle_domains.push(if dev_mode {
                ".test".to_owned()
            } else {
                format!(".{hostname}")
            });
        }
        for d in &mut handle_domains {
            if !d.starts_with('.') {
                d.insert(0, '.');
            }
        }
        let blob_upload_limit = env
            .parse::<usize>("PDS_BLOB_UPLOAD_LIMIT", "a byte count")?
            .unwrap_or(5 * 1024 * 1024);
        let plc_rotation_key = match env.get("PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX") {
            Some(text) => {
                let invalid = || ConfigError::Invalid {
                    name: "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX",
                    why: "expected a k256 private key as 64 hex digits".into(),
                };
                let bytes = hex::decode(text.trim()).map_err(|_| invalid())?;
                Some(Keypair::from_bytes(Algorithm::K256, &bytes).map_err(|_| invalid())?)
            }
            None => None,
        };
        let public_url = if dev_mode {
            format!("http://localhost:{port}")
        } else {
            format!("https://{hostname}")
        };
        let service_did = env
            .get("PDS_SERVICE_DID")
            .map(str::to_owned)
            .unwrap_or_else(|| format!("did:web:{hostname}"));
        let mod_service =
            ServiceConfig::from_env(env, "PDS_MOD_SERVICE_URL", "PDS_MOD_SERVICE_DID")?;
        let report_service =
            ServiceConfig::from_env(env, "PDS_REPORT_SERVICE_URL", "PDS_REPORT_SERVICE_DID")?
                .or_else(|| mod_service.clone());
        Ok(ServerConfig {
            app_view: ServiceConfig::from_env(
                env,
                "PDS_BSKY_APP_VIEW_URL",
                "PDS_BSKY_APP_VIEW_DID",
            )?,
            app_view_cdn_url_pattern: env
                .get("PDS_BSKY_APP_VIEW_CDN_URL_PATTERN")
                .map(str::to_owned),
            mod_service,
            report_service,
            hostname,
            port,
            public_url,
            service_did,
            jwt_secret,
            admin_password,
            did_plc_url,
            invite_required: env.flag("PDS_INVITE_REQUIRED")?,
            handle_domains,
            blob_upload_limit,
            max_import_size: env
                .parse::<u64>("PDS_MAX_REPO_IMPORT_SIZE", "a byte count")?
                .unwrap_or(100 * 1024 * 1024),
            accepting_imports: match env.get("PDS_ACCEPTING_REPO_IMPORTS") {
                Some(_) => env.flag("PDS_ACCEPTING_REPO_IMPORTS")?,
                None => true,
            },
            dev_mode,
            plc_rotation_key,
            rate_limits: rate_limits(env)?,
            email: EmailConfig::from_env(env, dev_mode)?,
        })
    }
}

/// `PDS_RATE_LIMITS_ENABLED` (default true), `PDS_RATE_LIMITS` (`rule=points,…`),
/// `PDS_RATE_LIMIT_BYPASS_KEY`, `PDS_RATE_LIMIT_BYPASS_IPS` and `PDS_CLIENT_IP_HEADER`.
fn rate_limits(env: &Env) -> Result<RateLimitConfig, ConfigError> {
    let mut config = RateLimitConfig::default();
    if env.get("PDS_RATE_LIMITS_ENABLED").is_some() {
        config.enabled = env.flag("PDS_RATE_LIMITS_ENABLED")?;
    }
    for entry in env.list("PDS_RATE_LIMITS") {
        let invalid = |why: String| ConfigError::Invalid {
            name: "PDS_RATE_LIMITS",
            why,
        };
        let (name, points) = entry
            .split_once('=')
            .ok_or_else(|| invalid(format!("{entry:?} is not rule=points")))?;
        let rule = RULES
            .iter()
            .find(|r| r.name == name.trim())
            .ok_or_else(|| invalid(format!("{name:?} is not a rule")))?;
        let points = points
            .trim()
            .parse::<u64>()
            .map_err(|_| invalid(format!("{points:?} is not a number of points")))?;
        config.points.insert(rule.name, points);
    }
    config.bypass_key = env.get("PDS_RATE_LIMIT_BYPASS_KEY").map(str::to_owned);
    for ip in env.list("PDS_RATE_LIMIT_BYPASS_IPS") {
        config
            .bypass_ips
            .push(ip.parse().map_err(|_| ConfigError::Invalid {
                name: "PDS_RATE_LIMIT_BYPASS_IPS",
                why: format!("{ip:?} is not an IP address"),
            })?);
    }
    if let Some(name) = env.get("PDS_CLIENT_IP_HEADER") {
        config.client_ip_header = Some(
            axum::http::HeaderName::try_from(name.to_ascii_lowercase()).map_err(|_| {
                ConfigError::Invalid {
                    name: "PDS_CLIENT_IP_HEADER",
                    why: format!("{name:?} is not a header name"),
                }
            })?,
        );
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs.iter().copied().collect()
    }

    #[test]
    fn production_needs_its_secrets_and_dev_mode_has_defaults() {
        assert_eq!(
            ServerConfig::from_env(&env(&[])).unwrap_err(),
            ConfigError::Missing("PDS_HOSTNAME")
        );
        let prod = [
            ("PDS_HOSTNAME", "pds.example.com"),
            ("PDS_ADMIN_PASSWORD", "a-long-admin-password"),
            ("PDS_DID_PLC_URL", "https://plc.directory"),
        ];
        assert_eq!(
            ServerConfig::from_env(&env(&prod)).unwrap_err(),
            ConfigError::Missing("PDS_JWT_SECRET")
        );
        let mut full = prod.to_vec();
        full.push(("PDS_JWT_SECRET", "0123456789abcdef0123456789abcdef"));
        let c = ServerConfig::from_env(&env(&full)).unwrap();
        // Development values are refused outside dev mode, and dev mode stays out of the
        // public directory.
        let mut weak = env(&full);
        weak.set("PDS_ADMIN_PASSWORD", "admin");
        assert!(matches!(
            ServerConfig::from_env(&weak),
            Err(ConfigError::Invalid {
                name: "PDS_ADMIN_PASSWORD",
                ..
            })
        ));
        let mut weak = env(&full);
        weak.set("PDS_JWT_SECRET", "insecure-development-jwt-secret");
        assert!(ServerConfig::from_env(&weak).is_err());
        assert!(matches!(
            ServerConfig::from_env(&env(&[
                ("PDS_DEV_MODE", "true"),
                ("PDS_DID_PLC_URL", "https://plc.directory/")
            ])),
            Err(ConfigError::Invalid {
                name: "PDS_DID_PLC_URL",
                ..
            })
        ));
        assert_eq!(c.public_url, "https://pds.example.com");
        assert_eq!(c.service_did, "did:web:pds.example.com");
        assert_eq!(c.handle_domains, [".pds.example.com"]);
        assert_eq!(c.blob_upload_limit, 5 * 1024 * 1024);
        assert_eq!(c.max_import_size, 100 * 1024 * 1024);
        assert!(c.accepting_imports);
        let dev = ServerConfig::from_env(&env(&[("PDS_DEV_MODE", "true"), ("PDS_PORT", "3000")]))
            .unwrap();
        assert_eq!(dev.public_url, "http://localhost:3000");
        assert_eq!(dev.did_plc_url, None);
        assert_eq!(dev.handle_domains, [".test"]);
    }

    #[test]
    fn bad_values_are_start_up_errors() {
        let base = [("PDS_DEV_MODE", "1")];
        for (k, v) in [
            ("PDS_PORT", "x"),
            ("PDS_BLOB_UPLOAD_LIMIT", "lots"),
            ("PDS_MAX_REPO_IMPORT_SIZE", "-1"),
            ("PDS_ACCEPTING_REPO_IMPORTS", "maybe"),
            ("PDS_INVITE_REQUIRED", "sometimes"),
            ("PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX", "not hex"),
            ("PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX", "abcd"),
            // Zero is not a private key.
            ("PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX", &"0".repeat(64)),
            ("PDS_RATE_LIMITS_ENABLED", "mostly"),
            ("PDS_RATE_LIMITS", "repo-write-hour"),
            ("PDS_RATE_LIMITS", "repo-writes-hour=10"),
            ("PDS_RATE_LIMITS", "repo-write-hour=lots"),
            ("PDS_RATE_LIMIT_BYPASS_IPS", "10.0.0.0/8"),
            ("PDS_CLIENT_IP_HEADER", "bad header"),
        ] {
            let mut e = env(&base);
            e.set(k, v);
            assert!(
                matches!(ServerConfig::from_env(&e), Err(ConfigError::Invalid { .. })),
                "{k}"
            );
        }
    }

    #[test]
    fn services_need_both_their_url_and_their_did() {
        let with = |pairs: &[(&str, &str)]| {
            let mut e = env(&[("PDS_DEV_MODE", "1")]);
            for (k, v) in pairs {
                e.set(*k, *v);
            }
            ServerConfig::from_env(&e)
        };
        assert_eq!(
            with(&[("PDS_BSKY_APP_VIEW_URL", "https://api.bsky.app")]).unwrap_err(),
            ConfigError::Missing("PDS_BSKY_APP_VIEW_DID")
        );
        assert_eq!(
            with(&[("PDS_REPORT_SERVICE_DID", "did:plc:ar7c4by46qjdydhdevvrndac")]).unwrap_err(),
            ConfigError::Missing("PDS_REPORT_SERVICE_URL")
        );
        assert!(matches!(
            with(&[
                ("PDS_MOD_SERVICE_URL", "ftp://x"),
                ("PDS_MOD_SERVICE_DID", "did:web:x")
            ]),
            Err(ConfigError::Invalid {
                name: "PDS_MOD_SERVICE_URL",
                ..
            })
        ));
        let c = with(&[
            ("PDS_BSKY_APP_VIEW_URL", "https://api.bsky.app/"),
            ("PDS_BSKY_APP_VIEW_DID", "did:web:api.bsky.app"),
            ("PDS_MOD_SERVICE_URL", "https://mod.bsky.app"),
            ("PDS_MOD_SERVICE_DID", "did:plc:ar7c4by46qjdydhdevvrndac"),
        ])
        .unwrap();
        assert_eq!(c.app_view.unwrap().url, "https://api.bsky.app");
        assert_eq!(
            c.report_service, c.mod_service,
            "reports go to the moderation service unless a report service is set"
        );
        assert!(with(&[]).unwrap().app_view.is_none());
    }

    #[test]
    fn rate_limits_are_on_by_default_and_each_rule_can_be_changed() {
        let c = ServerConfig::from_env(&env(&[("PDS_DEV_MODE", "1")])).unwrap();
        assert!(c.rate_limits.enabled);
        assert_eq!(c.rate_limits.points["repo-write-hour"], 5000);
        assert_eq!(c.rate_limits.client_ip_header, None);
        let c = ServerConfig::from_env(&env(&[
            ("PDS_DEV_MODE", "1"),
            ("PDS_RATE_LIMITS_ENABLED", "false"),
            ("PDS_RATE_LIMITS", "repo-write-hour=10, create-session-5m=3"),
            ("PDS_RATE_LIMIT_BYPASS_IPS", "10.0.0.1,::1"),
            ("PDS_CLIENT_IP_HEADER", "CloudFront-Viewer-Address"),
        ]))
        .unwrap();
        let limits = c.rate_limits;
        assert!(!limits.enabled);
        assert_eq!(
            (
                limits.points["repo-write-hour"],
                limits.points["create-session-5m"],
                limits.points["repo-write-day"]
            ),
            (10, 3, 35_000)
        );
        assert_eq!(limits.bypass_ips.len(), 2);
        assert_eq!(
            limits.client_ip_header.unwrap().as_str(),
            "cloudfront-viewer-address"
        );
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let secret = "4f3edf983ac636a65a842ce7c78d9aa706d3b113bce9c46f30d7d21715b23b1d";
        let c = ServerConfig::from_env(&env(&[
            ("PDS_DEV_MODE", "1"),
            ("PDS_JWT_SECRET", "jwt-secret-value-0123456789abcdef"),
            ("PDS_ADMIN_PASSWORD", "admin-password-value"),
            ("PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX", secret),
            ("PDS_RATE_LIMIT_BYPASS_KEY", "bypass-key-value"),
        ]))
        .unwrap();
        let shown = format!("{c:?}");
        for hidden in [
            "jwt-secret-value",
            "admin-password-value",
            secret,
            "bypass-key-value",
        ] {
            assert!(!shown.contains(hidden), "{shown}");
        }
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn the_operator_rotation_key_is_read_from_hex() {
        let secret = "4f3edf983ac636a65a842ce7c78d9aa706d3b113bce9c46f30d7d21715b23b1d";
        let c = ServerConfig::from_env(&env(&[
            ("PDS_DEV_MODE", "1"),
            ("PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX", secret),
        ]))
        .unwrap();
        let key = c.plc_rotation_key.unwrap();
        assert_eq!(hex::encode(key.to_bytes()), secret);
        assert_eq!(key.algorithm(), Algorithm::K256);
        let none = ServerConfig::from_env(&env(&[("PDS_DEV_MODE", "1")])).unwrap();
        assert!(none.plc_rotation_key.is_none());
    }
}
