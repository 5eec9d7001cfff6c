//! [`FirehoseConfig`]: how the hub tails, buffers and replays, parsed from `PDS_FIREHOSE_*`
//! (and `PDS_HOSTNAME`, `PDS_CRAWLERS`) by a pure function. The firehose needs no secret, so
//! nothing here reads one.

use std::time::Duration;

use crate::config::{ConfigError, Env};

/// How the firehose behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirehoseConfig {
    /// How long to sleep when the log has nothing new, while events are recent. Each poll is
    /// one read of the sequence counter.
    pub poll_interval: Duration,
    /// The longest sleep between polls once the log has been quiet for a second
    /// (`PDS_FIREHOSE_IDLE_POLL_MS`, default 1,000): the interval doubles from `poll_interval`
    /// up to this, and the first event after a quiet spell waits at most this long.
    pub idle_poll_interval: Duration,
    /// How long a missing sequence number is waited for before it is marked skipped.
    pub gap_grace: Duration,
    /// Frames a subscriber may fall behind before `ConsumerTooSlow`
    /// (`PDS_FIREHOSE_BUFFER`, default 1,000).
    pub buffer: usize,
    /// Bytes of frames a subscriber may fall behind before `ConsumerTooSlow`
    /// (`PDS_FIREHOSE_BUFFER_BYTES`, default 16 MiB): a commit frame can be 2 MB, so frames
    /// alone do not bound memory.
    pub buffer_bytes: usize,
    /// Subscribers at once (`PDS_FIREHOSE_MAX_CONNECTIONS`, default 1,000); more are refused.
    pub max_connections: usize,
    /// Subscribers replaying from storage at once (`PDS_FIREHOSE_MAX_BACKFILLS`, default 16);
    /// more wait their turn.
    pub max_backfills: usize,
    /// How far back a cursor may reach, in time (`PDS_FIREHOSE_WINDOW_HOURS`, default 72).
    pub window: Duration,
    /// How far back a cursor may reach, in events (`PDS_FIREHOSE_WINDOW_EVENTS`; None: time
    /// only).
    pub window_events: Option<u64>,
    /// Relays to notify (`PDS_CRAWLERS`, comma-separated URLs).
    pub crawlers: Vec<String>,
    /// This PDS's hostname, sent to crawlers (`PDS_HOSTNAME`).
    pub hostname: String,
    /// Least time between two `requestCrawl` rounds (the reference PDS's 20 minutes).
    pub crawl_interval: Duration,
}

impl Default for FirehoseConfig {
    fn default() -> Self {
        FirehoseConfig {
            poll_interval: Duration::from_millis(20),
            idle_poll_interval: Duration::from_secs(1),
            gap_grace: Duration::from_secs(2),
            buffer: 1000,
            buffer_bytes: 16 * 1024 * 1024,
            max_connections: 1000,
            max_backfills: 16,
            window: Duration::from_secs(72 * 3600),
            window_events: None,
            crawlers: Vec::new(),
            hostname: String::new(),
            crawl_interval: Duration::from_secs(20 * 60),
        }
    }
}

/// The `PDS_FIREHOSE_*` settings there are; any other name with that prefix is a typo and a
/// start-up error rather than a setting silently ignored.
const KNOWN: &[&str] = &[
    "PDS_FIREHOSE_PORT",
    "PDS_FIREHOSE_IDLE_POLL_MS",
    "PDS_FIREHOSE_BUFFER",
    "PDS_FIREHOSE_WINDOW_HOURS",
    "PDS_FIREHOSE_WINDOW_EVENTS",
    "PDS_FIREHOSE_BUFFER_BYTES",
    "PDS_FIREHOSE_MAX_CONNECTIONS",
    "PDS_FIREHOSE_MAX_BACKFILLS",
];

impl FirehoseConfig {
    /// Parses the firehose settings. `PDS_HOSTNAME` is required when crawlers are configured
    /// (it is what they are told to crawl).
    pub fn from_env(env: &Env) -> Result<FirehoseConfig, ConfigError> {
        if let Some(unknown) = env
            .names()
            .find(|n| n.starts_with("PDS_FIREHOSE_") && !KNOWN.contains(n))
        {
            return Err(ConfigError::Unknown(unknown.to_owned()));
        }
        let mut config = FirehoseConfig {
            crawlers: env.list("PDS_CRAWLERS"),
            hostname: env.get("PDS_HOSTNAME").unwrap_or_default().to_owned(),
            ..FirehoseConfig::default()
        };
        for crawler in &config.crawlers {
            if !(crawler.starts_with("https://") || crawler.starts_with("http://")) {
                return Err(ConfigError::Invalid {
                    name: "PDS_CRAWLERS",
                    why: format!("{crawler:?} is not an http(s) URL"),
                });
            }
        }
        if !config.crawlers.is_empty() && config.hostname.is_empty() {
            return Err(ConfigError::Missing("PDS_HOSTNAME"));
        }
        if let Some(hours) = env.positive("PDS_FIREHOSE_WINDOW_HOURS")? {
            config.window = Duration::from_secs(hours.saturating_mul(3600));
        }
        config.window_events = env.positive("PDS_FIREHOSE_WINDOW_EVENTS")?;
        if let Some(ms) = env.positive("PDS_FIREHOSE_IDLE_POLL_MS")? {
            config.idle_poll_interval = Duration::from_millis(ms).max(config.poll_interval);
        }
        let count = |name: &'static str| -> Result<Option<usize>, ConfigError> {
            env.positive(name)?
                .map(|n| {
                    usize::try_from(n).map_err(|_| ConfigError::Invalid {
                        name,
                        why: "too large".into(),
                    })
                })
                .transpose()
        };
        if let Some(n) = count("PDS_FIREHOSE_BUFFER")? {
            config.buffer = n;
        }
        if let Some(n) = count("PDS_FIREHOSE_BUFFER_BYTES")? {
            config.buffer_bytes = n;
        }
        if let Some(n) = count("PDS_FIREHOSE_MAX_CONNECTIONS")? {
            config.max_connections = n;
        }
        if let Some(n) = count("PDS_FIREHOSE_MAX_BACKFILLS")? {
            config.max_backfills = n;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs.iter().copied().collect()
    }

    #[test]
    fn settings_are_read_and_defaults_kept() {
        let c = FirehoseConfig::from_env(&env(&[
            ("PDS_HOSTNAME", "pds.example.com"),
            ("PDS_CRAWLERS", "https://bsky.network, https://relay.test"),
            ("PDS_FIREHOSE_WINDOW_HOURS", "24"),
            ("PDS_FIREHOSE_WINDOW_EVENTS", "5000"),
            ("PDS_FIREHOSE_BUFFER", "250"),
            ("PDS_FIREHOSE_BUFFER_BYTES", "1048576"),
            ("PDS_FIREHOSE_MAX_CONNECTIONS", "50"),
            ("PDS_FIREHOSE_MAX_BACKFILLS", "2"),
        ]))
        .unwrap();
        assert_eq!(
            (c.buffer_bytes, c.max_connections, c.max_backfills),
            (1_048_576, 50, 2)
        );
        assert_eq!(c.window, Duration::from_secs(24 * 3600));
        assert_eq!(c.window_events, Some(5000));
        assert_eq!(c.buffer, 250);
        assert_eq!(c.crawlers.len(), 2);
        assert_eq!(
            FirehoseConfig::from_env(&Env::default()).unwrap(),
            FirehoseConfig::default()
        );
    }

    #[test]
    fn every_bad_firehose_setting_is_an_error_naming_it() {
        for (k, v) in [
            ("PDS_FIREHOSE_WINDOW_HOURS", "three"),
            ("PDS_FIREHOSE_WINDOW_HOURS", "-1"),
            ("PDS_FIREHOSE_WINDOW_EVENTS", "0"),
            ("PDS_FIREHOSE_BUFFER", "1k"),
            ("PDS_FIREHOSE_BUFFER_BYTES", "lots"),
            ("PDS_FIREHOSE_MAX_CONNECTIONS", "0"),
            ("PDS_FIREHOSE_MAX_BACKFILLS", "-2"),
            ("PDS_FIREHOSE_IDLE_POLL_MS", "soon"),
            ("PDS_CRAWLERS", "bsky.network"),
        ] {
            let err =
                FirehoseConfig::from_env(&env(&[("PDS_HOSTNAME", "h.test"), (k, v)])).unwrap_err();
            assert!(err.to_string().starts_with(k), "{k}={v}: {err}");
        }
        let typo = FirehoseConfig::from_env(&env(&[("PDS_FIREHOSE_BUFER", "10")])).unwrap_err();
        assert_eq!(typo, ConfigError::Unknown("PDS_FIREHOSE_BUFER".into()));
        let no_host = FirehoseConfig::from_env(&env(&[("PDS_CRAWLERS", "https://r.test")]));
        assert_eq!(no_host, Err(ConfigError::Missing("PDS_HOSTNAME")));
    }
}
