//! [`EmailConfig`]: the sender address and which transport delivers mail, from `PDS_EMAIL_*`.

use crate::config::{ConfigError, Env};

/// How mail leaves this server.
#[derive(Clone, PartialEq, Eq)]
pub enum EmailTransport {
    /// An SMTP server (`PDS_EMAIL_SMTP_URL`: `smtps://user:pass@host:465`, or `smtp://…` with
    /// STARTTLS), as the reference PDS takes it.
    Smtp(String),
    /// Amazon SES in the process's region (`PDS_EMAIL_SES=true`).
    Ses,
    /// Files in the data directory's `outbox` folder (dev mode without another transport).
    Outbox,
}

/// The SMTP URL carries a password: shown as `<redacted>`.
impl std::fmt::Debug for EmailTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EmailTransport::Smtp(_) => f.write_str("Smtp(<redacted>)"),
            EmailTransport::Ses => f.write_str("Ses"),
            EmailTransport::Outbox => f.write_str("Outbox"),
        }
    }
}

/// The e-mail settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailConfig {
    /// The sender (`PDS_EMAIL_FROM_ADDRESS`).
    pub from: String,
    /// The transport.
    pub transport: EmailTransport,
}

impl EmailConfig {
    /// Parses the settings. None: this server sends no mail (production without a transport);
    /// the flows that need it answer an error saying so.
    pub fn from_env(env: &Env, dev_mode: bool) -> Result<Option<EmailConfig>, ConfigError> {
        let smtp = env.get("PDS_EMAIL_SMTP_URL");
        let ses = env.flag("PDS_EMAIL_SES")?;
        let transport = match (smtp, ses) {
            (Some(_), true) => {
                return Err(ConfigError::Invalid {
                    name: "PDS_EMAIL_SES",
                    why: "set either PDS_EMAIL_SMTP_URL or PDS_EMAIL_SES, not both".into(),
                });
            }
            (Some(url), false) => {
                if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
                    return Err(ConfigError::Invalid {
                        name: "PDS_EMAIL_SMTP_URL",
                        why: "expected an smtp:// or smtps:// URL".into(),
                    });
                }
                EmailTransport::Smtp(url.to_owned())
            }
            (None, true) => EmailTransport::Ses,
            (None, false) if dev_mode => EmailTransport::Outbox,
            (None, false) => return Ok(None),
        };
        let from = match env.get("PDS_EMAIL_FROM_ADDRESS") {
            Some(from) if from.contains('@') => from.to_owned(),
            Some(from) => {
                return Err(ConfigError::Invalid {
                    name: "PDS_EMAIL_FROM_ADDRESS",
                    why: format!("{from:?} is not an e-mail address"),
                });
            }
            None if transport == EmailTransport::Outbox => "noreply@localhost".to_owned(),
            None => return Err(ConfigError::Missing("PDS_EMAIL_FROM_ADDRESS")),
        };
        Ok(Some(EmailConfig { from, transport }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs.iter().copied().collect()
    }

    #[test]
    fn the_transport_follows_the_settings() {
        assert_eq!(EmailConfig::from_env(&env(&[]), false).unwrap(), None);
        let dev = EmailConfig::from_env(&env(&[]), true).unwrap().unwrap();
        assert_eq!(dev.transport, EmailTransport::Outbox);
        let smtp = EmailConfig::from_env(
            &env(&[
                ("PDS_EMAIL_SMTP_URL", "smtps://u:secret@mail.example.com"),
                ("PDS_EMAIL_FROM_ADDRESS", "pds@example.com"),
            ]),
            false,
        )
        .unwrap()
        .unwrap();
        assert!(matches!(smtp.transport, EmailTransport::Smtp(_)));
        assert!(!format!("{smtp:?}").contains("secret"));
        assert_eq!(
            EmailConfig::from_env(&env(&[("PDS_EMAIL_SES", "true")]), false),
            Err(ConfigError::Missing("PDS_EMAIL_FROM_ADDRESS"))
        );
        for bad in [
            [
                ("PDS_EMAIL_SMTP_URL", "mail.example.com"),
                ("PDS_EMAIL_FROM_ADDRESS", "a@b.c"),
            ],
            [
                ("PDS_EMAIL_SES", "yes"),
                ("PDS_EMAIL_FROM_ADDRESS", "not an address"),
            ],
            [("PDS_EMAIL_SES", "yes"), ("PDS_EMAIL_SMTP_URL", "smtp://h")],
        ] {
            assert!(
                matches!(
                    EmailConfig::from_env(&env(&bad), false),
                    Err(ConfigError::Invalid { .. })
                ),
                "{bad:?}"
            );
        }
    }
}
