//! Reading `PDS_*` settings: [`Env`], a plain map of variables with typed getters whose
//! failures name the variable ([`ConfigError`]).
//!
//! This is the bottom of the configuration story and does no I/O: the binaries collect
//! `std::env::vars()` (plus secrets fetched at start-up) into an [`Env`], and each layer parses
//! its own settings from it with a pure function (`ServerConfig::from_env`,
//! `FirehoseConfig::from_env`, `StorageConfig::from_env`). Building clients and storage from
//! the parsed settings happens in `crate::app`.

use std::collections::HashMap;
use std::str::FromStr;

/// A configuration problem found at start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required setting is missing (only dev mode has defaults for secrets).
    #[error("{0} is required (set it, or PDS_DEV_MODE=true for local development)")]
    Missing(&'static str),
    /// A variable with one of our prefixes that names no setting (a typo).
    #[error("{0} is not a setting (misspelt?)")]
    Unknown(String),
    /// A setting has an unusable value.
    #[error("{name} is invalid: {why}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong.
        why: String,
    },
}

/// Environment variables by name. Empty values count as unset, as in the reference PDS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env(HashMap<String, String>);

impl Env {
    /// The process environment.
    pub fn from_process() -> Env {
        Env(std::env::vars().collect())
    }

    /// The value of `name`, if set and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The names of every variable set.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Sets `name` (secrets read at start-up join the environment this way).
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), value.into());
    }

    /// Whether `name` is set to a true value (`1`, `true`, `yes`); anything else set is an
    /// error, so a typo never silently means "off".
    pub fn flag(&self, name: &'static str) -> Result<bool, ConfigError> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(false),
            Some("1" | "true" | "yes") => Ok(true),
            Some("0" | "false" | "no") => Ok(false),
            Some(other) => Err(ConfigError::Invalid {
                name,
                why: format!("{other:?} is not true or false"),
            }),
        }
    }

    /// `name` parsed as `T`, or None if unset; `what` describes the expected value in the error.
    pub fn parse<T: FromStr>(
        &self,
        name: &'static str,
        what: &str,
    ) -> Result<Option<T>, ConfigError> {
        self.get(name)
            .map(|v| {
                v.trim().parse().map_err(|_| ConfigError::Invalid {
                    name,
                    why: format!("{v:?} is not {what}"),
                })
            })
            .transpose()
    }

    /// A positive whole number (a count, a size in bytes, a duration in whole units).
    pub fn positive(&self, name: &'static str) -> Result<Option<u64>, ConfigError> {
        match self.parse::<u64>(name, "a positive whole number")? {
            Some(0) => Err(ConfigError::Invalid {
                name,
                why: "must be greater than zero".into(),
            }),
            other => Ok(other),
        }
    }

    /// A comma-separated list, entries trimmed, empty entries dropped.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Env {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Env {
        Env(iter
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect())
    }
}

impl From<HashMap<String, String>> for Env {
    fn from(map: HashMap<String, String>) -> Env {
        Env(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_are_unset_and_bad_values_name_their_variable() {
        let env: Env = [
            ("A", ""),
            ("N", "12"),
            ("Z", "0"),
            ("F", "maybe"),
            ("L", " a, ,b "),
        ]
        .into_iter()
        .collect();
        assert_eq!(env.get("A"), None);
        assert_eq!(env.positive("N"), Ok(Some(12)));
        assert!(matches!(
            env.positive("Z"),
            Err(ConfigError::Invalid { name: "Z", .. })
        ));
        assert!(matches!(
            env.flag("F"),
            Err(ConfigError::Invalid { name: "F", .. })
        ));
        assert_eq!(env.flag("A"), Ok(false));
        assert_eq!(env.list("L"), ["a", "b"]);
        let bad = env.parse::<u16>("F", "a port").unwrap_err();
        assert_eq!(bad.to_string(), "F is invalid: \"maybe\" is not a port");
    }
}
