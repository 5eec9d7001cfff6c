//! [`SesMailer`]: mail through Amazon SES (v2 API) on AWS, sending as a verified identity.

use async_trait::async_trait;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};

use super::{Mail, MailError, Mailer};

/// Sends with `SendEmail` as `from` (an identity verified in SES).
#[derive(Debug, Clone)]
pub struct SesMailer {
    client: aws_sdk_sesv2::Client,
    from: String,
}

impl SesMailer {
    /// A mailer on the SDK configuration `sdk`.
    pub fn new(sdk: &aws_config::SdkConfig, from: &str) -> SesMailer {
        SesMailer {
            client: aws_sdk_sesv2::Client::new(sdk),
            from: from.to_owned(),
        }
    }
}

fn utf8(data: &str) -> Result<Content, MailError> {
    Content::builder()
        .data(data)
        .charset("UTF-8")
        .build()
        .map_err(|e| MailError::Invalid(e.to_string()))
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let message = Message::builder()
            .subject(utf8(&mail.subject)?)
            .body(
                Body::builder()
                    .text(utf8(&mail.text)?)
                    .html(utf8(&mail.html)?)
                    .build(),
            )
            .build();
        self.client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&mail.to).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                MailError::Transport(aws_sdk_sesv2::error::DisplayErrorContext(e).to_string())
            })
    }
}
