//! [`Resolver`]: DIDs to documents and handles to DIDs, over the network, with a TTL cache.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hickory_resolver::TokioAsyncResolver;
use hickory_resolver::config::{
    NameServerConfig, NameServerConfigGroup, Protocol, ResolverConfig, ResolverOpts,
};

use super::plc::{PlcLog, PlcOperation};
use super::{DidDocument, IdentityConfig, IdentityError};
use crate::crypto::PublicKey;
use crate::syntax::{Did, Handle};

/// Resolves identities. Cheap to share behind an `Arc`; holds HTTP connection pools and caches.
#[derive(Debug)]
pub struct Resolver {
    config: IdentityConfig,
    /// For the operator-configured PLC directory (trusted, may be on a private address).
    plc_http: reqwest::Client,
    /// For hosts named by users (handles, did:web): private addresses refused unless allowed.
    web_http: reqwest::Client,
    dns: TokioAsyncResolver,
    dids: TtlCache<Did, DidDocument>,
    handles: TtlCache<Handle, Did>,
}

#[derive(Debug)]
struct TtlCache<K, V>(Mutex<HashMap<K, (Instant, V)>>);

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    fn new() -> Self {
        TtlCache(Mutex::new(HashMap::new()))
    }

    fn get(&self, key: &K, ttl: std::time::Duration) -> Option<V> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key)
            .filter(|(at, _)| at.elapsed() < ttl)
            .map(|(_, v)| v.clone())
    }

    fn put(&self, key: K, value: V) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Keep the cache bounded: drop everything when it grows past a size no PDS needs.
        if map.len() >= 50_000 {
            map.clear();
        }
        map.insert(key, (Instant::now(), value));
    }

    fn remove(&self, key: &K) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

/// Whether `ip` is loopback, private, link-local or otherwise not on the public internet.
pub(crate) fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let s = v6.segments();
            let embedded = |hi: u16, lo: u16| {
                let [a, b] = hi.to_be_bytes();
                let [c, d] = lo.to_be_bytes();
                is_private(IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d)))
            };
            // NAT64 (64:ff9b::/96, and the local-use 64:ff9b:1::/48) and 6to4 (2002::/16)
            // reach the IPv4 address they embed: private if that one is.
            let nat64 = s[0] == 0x64 && s[1] == 0xff9b && (s[2..6] == [0; 4] || s[2] == 1);
            let six_to_four = s[0] == 0x2002;
            v6.is_loopback()
                || v6.is_unspecified()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                // Local-use NAT64 maps to whatever the operator chose: never public.
                || (nat64 && s[2] == 1)
                || (nat64 && embedded(s[6], s[7]))
                || (six_to_four && embedded(s[1], s[2]))
        }
    }
}

/// reqwest's DNS hook: our resolver, with private addresses filtered out unless allowed.
struct SafeDns {
    dns: TokioAsyncResolver,
    allow_private: bool,
}

impl reqwest::dns::Resolve for SafeDns {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let dns = self.dns.clone();
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let ips = dns.lookup_ip(host.as_str()).await?;
            let addrs: Vec<SocketAddr> = ips
                .iter()
                .filter(|ip| allow_private || !is_private(*ip))
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves only to private addresses").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl Resolver {
    /// A resolver for `config`.
    pub fn new(config: IdentityConfig) -> Result<Resolver, IdentityError> {
        let mut opts = ResolverOpts::default();
        opts.timeout = config.timeout;
        opts.attempts = 2;
        let dns_config = match &config.dns_servers {
            Some(servers) => {
                let mut group = NameServerConfigGroup::new();
                for s in servers {
                    group.push(NameServerConfig::new(*s, Protocol::Udp));
                }
                ResolverConfig::from_parts(None, vec![], group)
            }
            None => hickory_resolver::system_conf::read_system_conf()
                .map(|(c, _)| c)
                .map_err(|e| IdentityError::DnsConfig(e.to_string()))?,
        };
        let dns = TokioAsyncResolver::tokio(dns_config, opts);
        let allow_private = config.allow_private_addresses;
        let build = |safe: bool| {
            let mut b = reqwest::Client::builder()
                .timeout(config.timeout)
                .user_agent(concat!("arroba-rs/", env!("CARGO_PKG_VERSION")));
            if safe {
                b = b
                    .redirect(redirect_policy(allow_private))
                    .dns_resolver(Arc::new(SafeDns {
                        dns: dns.clone(),
                        allow_private,
                    }));
            }
            b.build()
                .map_err(|e| IdentityError::DnsConfig(e.to_string()))
        };
        Ok(Resolver {
            plc_http: build(false)?,
            web_http: build(true)?,
            dns,
            dids: TtlCache::new(),
            handles: TtlCache::new(),
            config,
        })
    }

    /// An HTTP client for calling services named in DID documents (service proxying): the same
    /// guard against private addresses as DID and handle fetches (in DNS answers and redirects),
    /// no redirects followed, 10 s to connect and 30 s between reads (bodies stream).
    pub fn service_client(&self) -> Result<reqwest::Client, IdentityError> {
        let allow_private = self.config.allow_private_addresses;
        reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .read_timeout(std::time::Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("arroba-rs/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(SafeDns {
                dns: self.dns.clone(),
                allow_private,
            }))
            .build()
            .map_err(|e| IdentityError::DnsConfig(e.to_string()))
    }

    /// Whether a service URL may be called: HTTPS (plain HTTP only where private addresses are
    /// allowed, i.e. tests and development) and not an IP literal in a private range (a DNS
    /// name is checked when it resolves).
    pub fn allows_service_url(&self, url: &url::Url) -> bool {
        let allow_private = self.config.allow_private_addresses;
        let scheme_ok = url.scheme() == "https" || (allow_private && url.scheme() == "http");
        let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
        let private_literal = host.parse::<IpAddr>().is_ok_and(is_private);
        scheme_ok && !host.is_empty() && (allow_private || !private_literal)
    }

    /// The configuration.
    pub fn config(&self) -> &IdentityConfig {
        &self.config
    }

    /// Fetches `url` and returns at most `max_response_bytes` of body; non-2xx is an error.
    async fn fetch(&self, client: &reqwest::Client, url: &str) -> Result<Vec<u8>, IdentityError> {
        let http_err = |source| IdentityError::Http {
            url: url.to_owned(),
            source,
        };
        let mut response = client.get(url).send().await.map_err(http_err)?;
        let status = response.status();
        if !status.is_success() {
            return Err(IdentityError::HttpStatus {
                url: url.to_owned(),
                status: status.as_u16(),
            });
        }
        let max = self.config.max_response_bytes;
        if response
            .content_length()
            .is_some_and(|len| len > max as u64)
        {
            return Err(IdentityError::TooLarge(url.to_owned()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(http_err)? {
            if body.len() + chunk.len() > max {
                return Err(IdentityError::TooLarge(url.to_owned()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn parse_json<T: serde::de::DeserializeOwned>(
        url: &str,
        what: &'static str,
        body: &[u8],
    ) -> Result<T, IdentityError> {
        serde_json::from_slice(body).map_err(|e| IdentityError::BadResponse {
            url: url.to_owned(),
            what,
            why: e.to_string(),
        })
    }

    /// The base URL for a host named by a user: HTTPS, or plain HTTP on the test port.
    fn web_base(&self, host: &str) -> String {
        let localhost = host == "localhost" || host.starts_with("localhost:");
        match self.config.insecure_http_port {
            Some(port) => format!("http://{host}:{port}"),
            // As @atproto/identity does it: did:web:localhost%3A<port> is served over HTTP. Only
            // reachable where private addresses are allowed (dev mode).
            None if localhost => format!("http://{host}"),
            None => format!("https://{host}"),
        }
    }

    /// Resolves a DID to its document (cached). Supports did:plc and did:web.
    pub async fn resolve_did(&self, did: &Did) -> Result<DidDocument, IdentityError> {
        if let Some(doc) = self.dids.get(did, self.config.cache_ttl) {
            return Ok(doc);
        }
        let (client, url) = match did.method() {
            "plc" => (&self.plc_http, format!("{}/{did}", self.config.plc_url)),
            "web" => (
                &self.web_http,
                format!(
                    "{}/.well-known/did.json",
                    self.web_base(&did_web_host(did)?)
                ),
            ),
            _ => return Err(IdentityError::UnsupportedMethod(did.clone())),
        };
        let body = match self.fetch(client, &url).await {
            Err(IdentityError::HttpStatus { status: 404, .. }) => {
                return Err(IdentityError::DidNotFound(did.clone()));
            }
            Err(IdentityError::HttpStatus { status: 410, .. }) => {
                return Err(IdentityError::DidDeactivated(did.clone()));
            }
            other => other?,
        };
        let doc: DidDocument = Self::parse_json(&url, "DID document", &body)?;
        if doc.id != did.as_str() {
            return Err(IdentityError::BadResponse {
                url,
                what: "DID document",
                why: format!("id is {}", doc.id),
            });
        }
        self.dids.put(did.clone(), doc.clone());
        Ok(doc)
    }

    /// The atproto signing key of `did`.
    pub async fn signing_key(&self, did: &Did) -> Result<PublicKey, IdentityError> {
        self.resolve_did(did)
            .await?
            .signing_key()
            .ok_or_else(|| IdentityError::NoSigningKey(did.clone()))
    }

    /// Forgets cached data about `did` and `handle` (after an identity event).
    pub fn invalidate(&self, did: Option<&Did>, handle: Option<&Handle>) {
        if let Some(did) = did {
            self.dids.remove(did);
        }
        if let Some(handle) = handle {
            self.handles.remove(handle);
        }
    }

    /// Resolves a handle to the DID it claims (DNS TXT `_atproto.<handle>` first, then
    /// `/.well-known/atproto-did`), cached. This does **not** check the DID document claims the
    /// handle back; [`Resolver::verify_handle`] does.
    pub async fn resolve_handle(&self, handle: &Handle) -> Result<Did, IdentityError> {
        if let Some(did) = self.handles.get(handle, self.config.cache_ttl) {
            return Ok(did);
        }
        let did = match self.resolve_handle_dns(handle).await? {
            Some(did) => did,
            None => self
                .resolve_handle_http(handle)
                .await
                .ok_or_else(|| IdentityError::HandleNotFound(handle.clone()))?,
        };
        self.handles.put(handle.clone(), did.clone());
        Ok(did)
    }

    async fn resolve_handle_dns(&self, handle: &Handle) -> Result<Option<Did>, IdentityError> {
        // Any DNS failure (no record, NXDOMAIN, timeout) falls through to the HTTPS method.
        let Ok(txt) = self.dns.txt_lookup(format!("_atproto.{handle}.")).await else {
            return Ok(None);
        };
        let mut dids: Vec<Did> = Vec::new();
        for record in txt.iter() {
            let text: String = record
                .txt_data()
                .iter()
                .map(|part| String::from_utf8_lossy(part))
                .collect();
            if let Some(did) = text
                .strip_prefix("did=")
                .and_then(|d| Did::parse(d.trim()).ok())
            {
                if !dids.contains(&did) {
                    dids.push(did);
                }
            }
        }
        match dids.len() {
            0 => Ok(None),
            1 => Ok(dids.pop()),
            _ => Err(IdentityError::AmbiguousHandle(handle.clone())),
        }
    }

    async fn resolve_handle_http(&self, handle: &Handle) -> Option<Did> {
        let url = format!("{}/.well-known/atproto-did", self.web_base(handle.as_str()));
        let body = self.fetch(&self.web_http, &url).await.ok()?;
        Did::parse(std::str::from_utf8(&body).ok()?.trim()).ok()
    }

    /// Resolves `handle` and checks the DID's document lists `at://<handle>`.
    pub async fn verify_handle(&self, handle: &Handle) -> Result<Did, IdentityError> {
        let did = self.resolve_handle(handle).await?;
        let doc = self.resolve_did(&did).await?;
        if !doc.claims_handle(handle) {
            return Err(IdentityError::HandleMismatch {
                handle: handle.clone(),
                did,
            });
        }
        Ok(did)
    }

    /// Fetches and verifies the full operation log of a did:plc from the directory.
    pub async fn plc_log(&self, did: &Did) -> Result<PlcLog, IdentityError> {
        let url = format!("{}/{did}/log", self.config.plc_url);
        let body = match self.fetch(&self.plc_http, &url).await {
            Err(IdentityError::HttpStatus { status: 404, .. }) => {
                return Err(IdentityError::DidNotFound(did.clone()));
            }
            other => other?,
        };
        let ops: Vec<serde_json::Value> = Self::parse_json(&url, "PLC operation log", &body)?;
        let ops = ops
            .iter()
            .map(PlcOperation::from_json)
            .collect::<Result<Vec<_>, _>>()?;
        PlcLog::verify(did, ops)
    }

    /// The HTTP client for the PLC directory.
    pub(crate) fn plc_http(&self) -> &reqwest::Client {
        &self.plc_http
    }
}

/// Follows at most three redirects, and none to a private IP literal unless allowed (names are
/// checked by [`SafeDns`] when connecting).
fn redirect_policy(allow_private: bool) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        let host = attempt
            .url()
            .host_str()
            .unwrap_or_default()
            .trim_matches(['[', ']']);
        let private_literal = host.parse::<IpAddr>().is_ok_and(is_private);
        if attempt.previous().len() >= 3 {
            attempt.error("too many redirects")
        } else if private_literal && !allow_private {
            attempt.error("redirect to a private address")
        } else {
            attempt.follow()
        }
    })
}

/// The host a did:web names: the identifier with `%3A` decoded to `:` for a port. Paths
/// (further `:`-separated segments) are refused: atproto allows hostname-level did:web only, and
/// a port only for localhost.
fn did_web_host(did: &Did) -> Result<String, IdentityError> {
    let ident = did.identifier();
    if ident.contains(':') {
        return Err(IdentityError::InvalidDidWeb(did.clone()));
    }
    let host = ident.replace("%3A", ":").replace("%3a", ":");
    let (name, port) = match host.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host.as_str(), None),
    };
    let port_ok = port.is_none_or(|p| name == "localhost" && p.parse::<u16>().is_ok());
    if !port_ok || (name != "localhost" && Handle::parse(name).is_err()) {
        return Err(IdentityError::InvalidDidWeb(did.clone()));
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_web_hosts_follow_the_spec() {
        let host = |s: &str| did_web_host(&Did::parse(s).unwrap());
        assert_eq!(host("did:web:example.com").unwrap(), "example.com");
        assert_eq!(host("did:web:localhost%3A8080").unwrap(), "localhost:8080");
        assert!(host("did:web:example.com:path").is_err());
        assert!(host("did:web:example.com%3A8080").is_err());
        assert!(host("did:web:192.168.0.1").is_err());
    }

    #[test]
    fn private_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.1",
            "172.16.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "0.0.0.0",
            "64:ff9b::10.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b:1::8.8.8.8",
            "2002:c0a8:0101::1",
            "2002:7f00:0001::1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700::1111",
            "64:ff9b::8.8.8.8",
            "2002:0808:0808::1",
        ] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }
}
