//! The messages the account flows send, each as plain text and HTML. Every one carries a code
//! the person types (or pastes) into their app; none carries a link, so nothing depends on a
//! web page this server would have to host.

use super::Mail;

/// What a code is for, as the message says it (and what `accounts` binds a code to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Confirming the account's e-mail address.
    ConfirmEmail,
    /// Changing a confirmed e-mail address.
    UpdateEmail,
    /// Setting a new password.
    ResetPassword,
    /// Deleting the account.
    DeleteAccount,
    /// Signing in with e-mail two-factor.
    SignIn,
    /// Signing a change of the account's identity (moving it to another server).
    PlcOperation,
}

impl Purpose {
    fn subject(self) -> &'static str {
        match self {
            Purpose::ConfirmEmail => "Confirm your e-mail address",
            Purpose::UpdateEmail => "Change your e-mail address",
            Purpose::ResetPassword => "Reset your password",
            Purpose::DeleteAccount => "Delete your account",
            Purpose::SignIn => "Your sign-in code",
            Purpose::PlcOperation => "Confirm moving your account",
        }
    }

    fn sentence(self) -> &'static str {
        match self {
            Purpose::ConfirmEmail => {
                "To confirm this e-mail address for your account, enter this code"
            }
            Purpose::UpdateEmail => "To change the e-mail address of your account, enter this code",
            Purpose::ResetPassword => "To set a new password for your account, enter this code",
            Purpose::DeleteAccount => {
                "To delete your account for good, enter this code with your password"
            }
            Purpose::SignIn => "To finish signing in to your account, enter this code",
            Purpose::PlcOperation => {
                "To let your account's identity change (for example to move it to another server), enter this code"
            }
        }
    }
}

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The message carrying `token` for `purpose`, to `to`, for the account `handle` on `host`.
pub fn token_mail(purpose: Purpose, to: &str, handle: &str, host: &str, token: &str) -> Mail {
    let sentence = purpose.sentence();
    let text = format!(
        "Hello @{handle},\n\n{sentence}:\n\n    {token}\n\nThe code works once and expires in 15 minutes. \
         If you did not ask for it, ignore this message; nothing changes.\n\n{host}\n"
    );
    let html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif\"><p>Hello @{handle},</p>\
         <p>{sentence}:</p><p style=\"font-size:1.5em;font-family:monospace\">{token}</p>\
         <p>The code works once and expires in 15 minutes. If you did not ask for it, ignore this \
         message; nothing changes.</p><p>{host}</p></body></html>",
        handle = escape(handle),
        sentence = escape(sentence),
        token = escape(token),
        host = escape(host),
    );
    Mail {
        to: to.to_owned(),
        subject: purpose.subject().to_owned(),
        text,
        html,
    }
}

/// A message from the operator (`sendEmail`): `content` as plain text, and escaped in HTML.
pub fn operator_mail(to: &str, subject: &str, content: &str) -> Mail {
    Mail {
        to: to.to_owned(),
        subject: subject.to_owned(),
        text: content.to_owned(),
        html: format!(
            "<!doctype html><html><body><pre style=\"font-family:sans-serif;white-space:pre-wrap\">{}</pre></body></html>",
            escape(content)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_bodies_carry_the_code_and_html_is_escaped() {
        let mail = token_mail(
            Purpose::ResetPassword,
            "a@example.com",
            "a<b>.test",
            "pds.test",
            "ABCDE-23456",
        );
        assert!(mail.text.contains("ABCDE-23456") && mail.html.contains("ABCDE-23456"));
        assert!(mail.html.contains("a&lt;b&gt;.test"));
        assert_eq!(mail.subject, "Reset your password");
    }
}
