//! The e-mail flows over HTTP, each code read from where the server sent it: the dev outbox,
//! an SMTP server (a stand-in speaking the protocol on a socket), or SES on the emulator.
//! Confirmation, address change, password reset, deletion and sign-in two-factor work end to
//! end; a wrong, reused, expired or other-purpose code is refused.

use arroba::mail::{Mail, Mailer, SesMailer};
use arroba::storage::KvCondition;
use serde_json::{Value, json};

use crate::common::pds::{Pds, Session};

async fn session_of(pds: &Pds, handle: &str, password: &str) -> (u16, Value) {
    pds.post(
        "com.atproto.server.createSession",
        None,
        json!({"identifier": handle, "password": password}),
    )
    .await
}

#[tokio::test]
async fn confirming_and_changing_the_address_with_mailed_codes() {
    let pds = Pds::start(&[]).await;
    let alice = pds.create_account("alice").await;
    let (_, s) = pds
        .get("com.atproto.server.getSession", Some(&alice.access), &[])
        .await;
    assert_eq!(s["emailConfirmed"], false);
    let post = |nsid: &'static str, body: Value| pds.post(nsid, Some(&alice.access), body);
    assert_eq!(
        post("com.atproto.server.requestEmailConfirmation", json!({}))
            .await
            .0,
        200
    );
    let code = pds.last_code_to("alice@example.com");
    let mail = pds.mails().pop().unwrap();
    assert_eq!(mail.subject, "Confirm your e-mail address");
    assert!(mail.html.contains(&code), "both bodies carry the code");
    // The code is for this address only.
    let (status, body) = post(
        "com.atproto.server.confirmEmail",
        json!({"email": "other@example.com", "token": code}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("InvalidEmail"))
    );
    let (status, _) = post(
        "com.atproto.server.confirmEmail",
        json!({"email": "Alice@Example.com", "token": code.to_lowercase()}),
    )
    .await;
    assert_eq!(status, 200, "codes are read case-insensitively");
    let (_, s) = pds
        .get("com.atproto.server.getSession", Some(&alice.access), &[])
        .await;
    assert_eq!(s["emailConfirmed"], true);
    // Reused: gone.
    let (status, body) = post(
        "com.atproto.server.confirmEmail",
        json!({"email": "alice@example.com", "token": code}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("InvalidToken"))
    );

    // Once confirmed, a change needs a code sent to the old address.
    let (status, body) = post("com.atproto.server.requestEmailUpdate", json!({})).await;
    assert_eq!((status, &body["tokenRequired"]), (200, &json!(true)));
    let (status, body) = post(
        "com.atproto.server.updateEmail",
        json!({"email": "alice@new.example"}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("TokenRequired"))
    );
    let code = pds.last_code_to("alice@example.com");
    // A code for another purpose finds nothing.
    let (status, body) = post(
        "com.atproto.server.confirmEmail",
        json!({"email": "alice@example.com", "token": code}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("InvalidToken"))
    );
    // (That attempt did not use up the update code.)
    let (status, _) = post(
        "com.atproto.server.updateEmail",
        json!({"email": "alice@new.example", "token": code}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, s) = pds
        .get("com.atproto.server.getSession", Some(&alice.access), &[])
        .await;
    assert_eq!(
        (s["email"].as_str(), &s["emailConfirmed"]),
        (Some("alice@new.example"), &json!(false))
    );
    // The old address is free for someone else; the new one is taken.
    let (status, body) = pds
        .post(
            "com.atproto.server.createAccount",
            None,
            json!({"handle": "bob.test", "password": "bob-pw", "email": "alice@new.example"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = pds
        .post(
            "com.atproto.server.createAccount",
            None,
            json!({"handle": "bob.test", "password": "bob-pw", "email": "alice@example.com"}),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_forgotten_password_is_reset_with_a_mailed_code_and_old_sessions_end() {
    let pds = Pds::start(&[]).await;
    let alice = pds.create_account("alice").await;
    let request = |email: &str| {
        pds.post(
            "com.atproto.server.requestPasswordReset",
            None,
            json!({ "email": email }),
        )
    };
    // The same answer for an address nobody has, and no mail.
    assert_eq!(request("nobody@example.com").await.0, 200);
    assert!(pds.mails().is_empty());
    assert_eq!(request("ALICE@example.com").await.0, 200);
    let first = pds.last_code_to("alice@example.com");
    // Asking again replaces the first code.
    assert_eq!(request("alice@example.com").await.0, 200);
    let code = pds.last_code_to("alice@example.com");
    let reset = |token: &str| {
        pds.post(
            "com.atproto.server.resetPassword",
            None,
            json!({"token": token, "password": "a new password"}),
        )
    };
    let (status, body) = reset(&first).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("InvalidToken"))
    );
    assert_eq!(reset(&code).await.0, 200);
    let (status, body) = reset(&code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("InvalidToken")),
        "single use"
    );
    assert_eq!(session_of(&pds, "alice.test", "alice-pw").await.0, 401);
    assert_eq!(
        session_of(&pds, "alice.test", "a new password").await.0,
        200
    );
    assert_eq!(
        pds.post(
            "com.atproto.server.refreshSession",
            Some(&alice.refresh),
            json!({})
        )
        .await
        .0,
        400,
        "the sessions from before the reset ended"
    );
}

#[tokio::test]
async fn an_expired_code_is_refused_as_expired() {
    let pds = Pds::start(&[]).await;
    pds.create_account("alice").await;
    pds.post(
        "com.atproto.server.requestPasswordReset",
        None,
        json!({"email": "alice@example.com"}),
    )
    .await;
    let code = pds.last_code_to("alice@example.com");
    // Sixteen minutes pass: move the stored code's expiry into the past.
    let storage = pds.state.storage();
    for (key, raw) in storage.kv_list("email-token", None, 10).await.unwrap() {
        let mut token: Value = serde_json::from_slice(&raw).unwrap();
        token["expires_at"] =
            json!((chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339());
        let aged = serde_json::to_vec(&token).unwrap();
        assert!(
            storage
                .kv_put("email-token", &key, &aged, KvCondition::IfEquals(&raw))
                .await
                .unwrap()
        );
    }
    let (status, body) = pds
        .post(
            "com.atproto.server.resetPassword",
            None,
            json!({"token": code, "password": "too late"}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("ExpiredToken"))
    );
    assert_eq!(session_of(&pds, "alice.test", "alice-pw").await.0, 200);
}

#[tokio::test]
async fn e_mail_two_factor_asks_for_a_mailed_code_at_sign_in() {
    let pds = Pds::start(&[]).await;
    let alice = pds.create_account("alice").await;
    let post = |nsid: &'static str, body: Value| pds.post(nsid, Some(&alice.access), body);
    // Two-factor needs a confirmed address.
    let (status, _) = post(
        "com.atproto.server.updateEmail",
        json!({"email": "alice@example.com", "emailAuthFactor": true}),
    )
    .await;
    assert_eq!(status, 400);
    post("com.atproto.server.requestEmailConfirmation", json!({})).await;
    let code = pds.last_code_to("alice@example.com");
    post(
        "com.atproto.server.confirmEmail",
        json!({"email": "alice@example.com", "token": code}),
    )
    .await;
    post("com.atproto.server.requestEmailUpdate", json!({})).await;
    let code = pds.last_code_to("alice@example.com");
    let (status, body) = post(
        "com.atproto.server.updateEmail",
        json!({"email": "alice@example.com", "emailAuthFactor": true, "token": code}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = session_of(&pds, "alice.test", "alice-pw").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("AuthFactorTokenRequired"))
    );
    let code = pds.last_code_to("alice@example.com");
    assert_eq!(pds.mails().pop().unwrap().subject, "Your sign-in code");
    let (status, body) = pds
        .post(
            "com.atproto.server.createSession",
            None,
            json!({"identifier": "alice.test", "password": "alice-pw", "authFactorToken": code}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["emailAuthFactor"], true);
    // A wrong password never sends a code.
    let before = pds.mails().len();
    assert_eq!(session_of(&pds, "alice.test", "wrong").await.0, 401);
    assert_eq!(pds.mails().len(), before);
}

#[tokio::test]
async fn requests_that_mail_codes_have_their_own_budget() {
    let pds = Pds::start(&[("PDS_RATE_LIMITS", "email-request-hour=2")]).await;
    let alice = pds.create_account("alice").await;
    crate::common::start_well_inside_the_window(3600).await;
    let ask = || {
        pds.post(
            "com.atproto.server.requestEmailConfirmation",
            Some(&alice.access),
            json!({}),
        )
    };
    assert_eq!(ask().await.0, 200);
    assert_eq!(ask().await.0, 200);
    let (status, body) = ask().await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("RateLimitExceeded"))
    );
    assert_eq!(pds.mails().len(), 2);
}

#[tokio::test]
async fn over_smtp_the_deletion_code_reaches_the_server_and_deletes_the_account() {
    let (port, received) = crate::common::smtp::stand_in().await;
    let url = format!("smtp://127.0.0.1:{port}");
    let pds = Pds::start(&[
        ("PDS_EMAIL_SMTP_URL", url.as_str()),
        ("PDS_EMAIL_FROM_ADDRESS", "pds@example.com"),
    ])
    .await;
    let alice: Session = pds.create_account("alice").await;
    let (status, body) = pds
        .post(
            "com.atproto.server.requestAccountDelete",
            Some(&alice.access),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(pds.mails().is_empty(), "no outbox once SMTP is set");
    let message = received.lock().unwrap().pop().expect("a message over SMTP");
    assert!(message.contains("From: pds@example.com"), "{message}");
    assert!(message.contains("To: alice@example.com"), "{message}");
    assert!(
        message.contains("Subject: Delete your account"),
        "{message}"
    );
    let code = crate::common::smtp::code_in(&message).unwrap();
    let (status, body) = pds
        .post(
            "com.atproto.server.deleteAccount",
            None,
            json!({"did": alice.did, "password": "alice-pw", "token": code}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, st) = pds
        .get(
            "com.atproto.sync.getRepoStatus",
            None,
            &[("did", alice.did.as_str())],
        )
        .await;
    assert_eq!(st["status"], "deleted");
}

#[tokio::test]
async fn ses_sends_as_a_verified_identity_on_the_emulator() {
    let sdk = crate::common::sdk_config().await;
    let ses = aws_sdk_sesv2::Client::new(&sdk);
    ses.create_email_identity()
        .email_identity("pds@example.com")
        .send()
        .await
        .unwrap();
    let mailer = SesMailer::new(&sdk, "pds@example.com");
    let mail = Mail {
        to: "alice@example.com".into(),
        subject: "Reset your password".into(),
        text: "ABCDE-23456".into(),
        html: "<p>ABCDE-23456</p>".into(),
    };
    mailer.send(&mail).await.unwrap();
    // An address SES has not verified is refused.
    let unverified = SesMailer::new(&sdk, "someone-else@unverified.example");
    assert!(unverified.send(&mail).await.is_err());
}
