//! [`OutboxMailer`]: development mail as JSON files in a folder, one per message, named so they
//! sort by time: what a developer opens to click a confirmation link, and what the tests read.

use std::path::PathBuf;

use async_trait::async_trait;

use super::{Mail, MailError, Mailer};

/// Writes each message to `<dir>/<time>-<random>.json`.
#[derive(Debug, Clone)]
pub struct OutboxMailer {
    dir: PathBuf,
}

impl OutboxMailer {
    /// An outbox in `dir` (created on the first message).
    pub fn new(dir: impl Into<PathBuf>) -> OutboxMailer {
        OutboxMailer { dir: dir.into() }
    }

    /// The folder.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

#[async_trait]
impl Mailer for OutboxMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let io = |e: std::io::Error| MailError::Transport(format!("outbox: {e}"));
        tokio::fs::create_dir_all(&self.dir).await.map_err(io)?;
        let name = format!(
            "{}-{:08x}.json",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
            rand::random::<u32>()
        );
        let body =
            serde_json::to_vec_pretty(mail).map_err(|e| MailError::Invalid(e.to_string()))?;
        tokio::fs::write(self.dir.join(&name), body)
            .await
            .map_err(io)?;
        tracing::info!(to = %mail.to, file = %self.dir.join(&name).display(), "mail written to the outbox");
        Ok(())
    }
}
