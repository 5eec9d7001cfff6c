//! E-mail: the [`Mailer`] trait and its transports — SMTP anywhere ([`SmtpMailer`], `lettre`),
//! Amazon SES on AWS ([`SesMailer`]) and, in development, an outbox folder ([`OutboxMailer`]) that
//! a developer and the tests read — plus the messages the account flows send ([`templates`]).
//!
//! Sending happens on the request path, with a few quick retries ([`send_with_retries`]): a
//! Lambda may be frozen the moment it answers, so nothing is left to run after the response.

mod config;
mod outbox;
mod ses;
mod smtp;
pub mod templates;

use std::time::Duration;

use async_trait::async_trait;

pub use config::{EmailConfig, EmailTransport};
pub use outbox::OutboxMailer;
pub use ses::SesMailer;
pub use smtp::SmtpMailer;

/// One message: plain text and HTML alternatives of the same content.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mail {
    /// The recipient's address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
}

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// An address or setting that cannot be used.
    #[error("invalid e-mail setting or address: {0}")]
    Invalid(String),
    /// The transport failed (network, server refusal); worth another try.
    #[error("sending failed: {0}")]
    Transport(String),
}

/// Something that delivers [`Mail`].
#[async_trait]
pub trait Mailer: Send + Sync + std::fmt::Debug {
    /// Sends one message.
    async fn send(&self, mail: &Mail) -> Result<(), MailError>;
}

/// Attempts, and the pause before each retry.
const RETRY_PAUSES: [Duration; 2] = [Duration::from_millis(200), Duration::from_millis(800)];

/// Sends `mail`, retrying a transport failure twice; the last error is logged and returned.
pub async fn send_with_retries(mailer: &dyn Mailer, mail: &Mail) -> Result<(), MailError> {
    let mut pauses = RETRY_PAUSES.iter();
    loop {
        match mailer.send(mail).await {
            Ok(()) => return Ok(()),
            Err(MailError::Transport(why)) => match pauses.next() {
                Some(pause) => {
                    tracing::warn!(to = %mail.to, error = %why, "sending mail failed; retrying");
                    tokio::time::sleep(*pause).await;
                }
                None => {
                    tracing::error!(to = %mail.to, error = %why, "sending mail failed");
                    return Err(MailError::Transport(why));
                }
            },
            Err(e) => {
                tracing::error!(to = %mail.to, error = %e, "sending mail failed");
                return Err(e);
            }
        }
    }
}
