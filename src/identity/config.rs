//! [`IdentityConfig`]: where and how identities are resolved.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

/// The default PLC directory.
pub const DEFAULT_PLC_URL: &str = "https://plc.directory";

/// How the [`super::Resolver`] reaches the network.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// Base URL of the PLC directory (`PDS_DID_PLC_URL`, or arroba's `PLC_HOST` as
    /// `https://<host>`), without a trailing slash.
    pub plc_url: String,
    /// DNS servers for handle TXT lookups and for HTTP hosts; `None` uses the system's.
    pub dns_servers: Option<Vec<SocketAddr>>,
    /// Allow HTTP requests to loopback and private addresses (tests and local runs only; in
    /// production this stops handles and did:web documents from probing the internal network).
    pub allow_private_addresses: bool,
    /// Fetch did:web documents and handle well-known files over plain HTTP on this port instead
    /// of HTTPS on 443. For tests only.
    pub insecure_http_port: Option<u16>,
    /// Timeout for each HTTP request and DNS query.
    pub timeout: Duration,
    /// Largest response body accepted, in bytes.
    pub max_response_bytes: usize,
    /// How long resolved DIDs and handles are cached.
    pub cache_ttl: Duration,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            plc_url: DEFAULT_PLC_URL.to_owned(),
            dns_servers: None,
            allow_private_addresses: false,
            insecure_http_port: None,
            timeout: Duration::from_secs(5),
            max_response_bytes: 256 * 1024,
            cache_ttl: Duration::from_secs(6 * 3600),
        }
    }
}

impl IdentityConfig {
    /// Reads `PDS_DID_PLC_URL` (or arroba's `PLC_HOST`) from `env`; other fields keep their
    /// defaults.
    pub fn from_env(env: &HashMap<String, String>) -> IdentityConfig {
        let plc_url = env
            .get("PDS_DID_PLC_URL")
            .cloned()
            .or_else(|| env.get("PLC_HOST").map(|h| format!("https://{h}")))
            .unwrap_or_else(|| DEFAULT_PLC_URL.to_owned());
        IdentityConfig {
            plc_url: plc_url.trim_end_matches('/').to_owned(),
            ..IdentityConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plc_url_comes_from_pds_did_plc_url_or_arrobas_plc_host() {
        let env = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(IdentityConfig::from_env(&env(&[])).plc_url, DEFAULT_PLC_URL);
        assert_eq!(
            IdentityConfig::from_env(&env(&[("PLC_HOST", "plc.example")])).plc_url,
            "https://plc.example"
        );
        let both = env(&[
            ("PLC_HOST", "plc.example"),
            ("PDS_DID_PLC_URL", "http://localhost:2582/"),
        ]);
        assert_eq!(
            IdentityConfig::from_env(&both).plc_url,
            "http://localhost:2582"
        );
    }
}
