//! The OAuth authorization code flow over HTTP against a real server, as a public client does
//! it: metadata, a pushed request with a DPoP proof (and the nonce dance), the sign-in page and
//! its form, the token endpoint, then XRPC calls with the DPoP-bound token. Each refusal the
//! profile requires is tried: no PKCE, a redirect URI or scope the client did not declare, a
//! reused code, a wrong verifier, another DPoP key, a replayed proof, a reused refresh token,
//! a revoked session.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::SigningKey;
use p256::ecdsa::signature::Signer;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::pds::Pds;

const REDIRECT: &str = "http://127.0.0.1/callback";

fn client_id() -> String {
    loopback_client("atproto transition:generic")
}

/// A DPoP key and the nonce the server last gave it.
struct Dpop {
    key: SigningKey,
    nonce: Option<String>,
}

impl Dpop {
    fn new() -> Dpop {
        Dpop {
            key: SigningKey::random(&mut rand::rngs::OsRng),
            nonce: None,
        }
    }

    fn proof(&self, method: &str, url: &str, access_token: Option<&str>) -> String {
        let point = self.key.verifying_key().to_encoded_point(false);
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": {
            "kty": "EC", "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
            "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
        }});
        let mut claims = json!({
            "jti": hex::encode(rand::random::<[u8; 12]>()),
            "htm": method, "htu": url, "iat": chrono::Utc::now().timestamp(),
        });
        if let Some(nonce) = &self.nonce {
            claims["nonce"] = json!(nonce);
        }
        if let Some(token) = access_token {
            claims["ath"] = json!(URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes())));
        }
        sign_jwt(&self.key, &header, &claims)
    }
}

/// A compact ES256 JWT of `header` and `claims` signed with `key`.
fn sign_jwt(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature: p256::ecdsa::Signature = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

/// The public JWK of `key`, named `kid`.
fn public_jwk(key: &SigningKey, kid: &str) -> Value {
    let point = key.verifying_key().to_encoded_point(false);
    json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
        "y": URL_SAFE_NO_PAD.encode(point.y().unwrap())})
}

struct Flow {
    pds: Pds,
    http: reqwest::Client,
    /// The issuer's URL, which proofs name (the public URL, not the loopback socket).
    issuer: String,
    /// The client: the loopback development client unless a test sets another.
    client_id: String,
}

impl Flow {
    async fn start() -> Flow {
        Flow::serve(Pds::start(&[]).await).await
    }

    async fn serve(pds: Pds) -> Flow {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let meta: Value = http
            .get(format!(
                "{}/.well-known/oauth-authorization-server",
                pds.url
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let issuer = meta["issuer"].as_str().unwrap().to_owned();
        Flow {
            pds,
            http,
            issuer,
            client_id: client_id(),
        }
    }

    /// POSTs a form to an OAuth endpoint with a proof, retrying once with the nonce the server
    /// asks for, as clients do. Returns (status, body, the raw proof sent last).
    async fn post_form(&self, dpop: &mut Dpop, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        for _ in 0..2 {
            let proof = dpop.proof("POST", &format!("{}{path}", self.issuer), None);
            let response = self
                .http
                .post(format!("{}{path}", self.pds.url))
                .header("DPoP", proof)
                .form(form)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            if let Some(n) = response.headers().get("dpop-nonce") {
                dpop.nonce = Some(n.to_str().unwrap().to_owned());
            }
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if body["error"] != "use_dpop_nonce" {
                return (status, body);
            }
        }
        panic!("the server kept asking for a nonce");
    }

    async fn par(&self, dpop: &mut Dpop, extra: &[(&str, &str)]) -> (u16, Value, String) {
        let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let mut form: Vec<(&str, &str)> = vec![
            ("client_id", &self.client_id),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("scope", "atproto transition:generic"),
            ("state", "st-123"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("login_hint", "alice.test"),
        ];
        for (k, v) in extra {
            form.retain(|(name, _)| name != k);
            if !v.is_empty() {
                form.push((k, v));
            }
        }
        let (status, body) = self.post_form(dpop, "/oauth/par", &form).await;
        (status, body, verifier)
    }

    /// Opens the sign-in page for `request_uri`; returns its HTML and the CSRF cookie.
    async fn page(&self, request_uri: &str) -> (u16, String, String) {
        let response = self
            .http
            .get(format!("{}/oauth/authorize", self.pds.url))
            .query(&[
                ("client_id", self.client_id.as_str()),
                ("request_uri", request_uri),
            ])
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let cookie = response
            .headers()
            .get("set-cookie")
            .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_owned())
            .unwrap_or_default();
        (status, response.text().await.unwrap(), cookie)
    }

    /// Posts the page's form; returns (status, Location, body).
    async fn submit(
        &self,
        request_uri: &str,
        cookie: &str,
        csrf: &str,
        fields: &[(&str, &str)],
    ) -> (u16, String, String) {
        let mut form = vec![
            ("client_id", self.client_id.as_str()),
            ("request_uri", request_uri),
            ("csrf", csrf),
        ];
        form.extend_from_slice(fields);
        let response = self
            .http
            .post(format!("{}/oauth/authorize", self.pds.url))
            .header("cookie", cookie)
            .form(&form)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, location, response.text().await.unwrap())
    }

    /// Signs in as alice through the whole flow; returns the code, its verifier and the
    /// redirect's parameters.
    async fn code(&self, dpop: &mut Dpop) -> (String, String) {
        self.code_with(dpop, &[]).await
    }

    async fn code_with(&self, dpop: &mut Dpop, extra: &[(&str, &str)]) -> (String, String) {
        let (status, body, verifier) = self.par(dpop, extra).await;
        assert_eq!(status, 201, "{body}");
        let request_uri = body["request_uri"].as_str().unwrap();
        let (status, html, cookie) = self.page(request_uri).await;
        assert_eq!(status, 200, "{html}");
        let csrf = cookie.split_once('=').unwrap().1.to_owned();
        let fields = [
            ("identifier", "alice.test"),
            ("password", "alice-pw"),
            ("decision", "allow"),
        ];
        let (status, location, body) = self.submit(request_uri, &cookie, &csrf, &fields).await;
        assert_eq!(status, 303, "{body}");
        let url = url::Url::parse(&location).unwrap();
        let answer: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(answer["state"], "st-123");
        assert_eq!(answer["iss"], self.issuer);
        (answer["code"].clone(), verifier)
    }

    async fn redeem(&self, dpop: &mut Dpop, code: &str, verifier: &str) -> (u16, Value) {
        self.redeem_with(dpop, code, verifier, &[]).await
    }

    async fn redeem_with(
        &self,
        dpop: &mut Dpop,
        code: &str,
        verifier: &str,
        extra: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("client_id", self.client_id.as_str()),
            ("redirect_uri", REDIRECT),
            ("code", code),
            ("code_verifier", verifier),
        ];
        form.extend_from_slice(extra);
        self.post_form(dpop, "/oauth/token", &form).await
    }

    /// Calls an XRPC method with a DPoP-bound token and a proof made by `dpop`.
    async fn xrpc(
        &self,
        dpop: &mut Dpop,
        method: reqwest::Method,
        nsid: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value, String) {
        let path = format!("/xrpc/{nsid}");
        let proof = dpop.proof(
            method.as_str(),
            &format!("{}{path}", self.issuer),
            Some(token),
        );
        self.send_xrpc(method, &path, token, &proof, body).await
    }

    /// `getSession` with `token` and a proof by `dpop`.
    async fn session(&self, dpop: &mut Dpop, token: &str) -> (u16, Value, String) {
        let nsid = "com.atproto.server.getSession";
        self.xrpc(dpop, reqwest::Method::GET, nsid, token, None)
            .await
    }

    async fn send_xrpc(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        proof: &str,
        body: Option<Value>,
    ) -> (u16, Value, String) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.pds.url))
            .header("Authorization", format!("DPoP {token}"))
            .header("DPoP", proof);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (
            status,
            response.json().await.unwrap_or(Value::Null),
            challenge,
        )
    }
}

#[tokio::test]
async fn metadata_documents_describe_this_server_as_its_own_authorization_server() {
    let flow = Flow::start().await;
    let resource: Value = flow
        .http
        .get(format!(
            "{}/.well-known/oauth-protected-resource",
            flow.pds.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resource["authorization_servers"], json!([flow.issuer]));
    let meta: Value = flow
        .http
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            flow.pds.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["require_pushed_authorization_requests"], true);
    assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(meta["dpop_signing_alg_values_supported"], json!(["ES256"]));
    assert_eq!(meta["client_id_metadata_document_supported"], true);
    assert_eq!(
        meta["token_endpoint"],
        format!("{}/oauth/token", flow.issuer)
    );
}

#[tokio::test]
async fn a_public_client_signs_in_and_writes_with_its_dpop_bound_token() {
    let flow = Flow::start().await;
    let alice = flow.pds.create_account("alice").await;
    let mut dpop = Dpop::new();
    // The first proof has no nonce: the server hands one out with the refusal.
    let (status, body, _) = {
        let proof = dpop.proof("POST", &format!("{}/oauth/par", flow.issuer), None);
        let response = flow
            .http
            .post(format!("{}/oauth/par", flow.pds.url))
            .header("DPoP", proof)
            .form(&[("client_id", client_id())])
            .send()
            .await
            .unwrap();
        let nonce = response.headers().get("dpop-nonce").cloned();
        assert!(nonce.is_some(), "the nonce comes with the refusal");
        (
            response.status().as_u16(),
            response.json::<Value>().await.unwrap(),
            (),
        )
    };
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("use_dpop_nonce"))
    );

    let (code, verifier) = flow.code(&mut dpop).await;
    let (status, tokens) = flow.redeem(&mut dpop, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "DPoP");
    assert_eq!(tokens["sub"], alice.did);
    assert_eq!(tokens["scope"], "atproto transition:generic");
    let access = tokens["access_token"].as_str().unwrap().to_owned();

    let record = json!({"repo": alice.did, "collection": "app.bsky.feed.post",
        "record": {"text": "via OAuth", "createdAt": "2026-12-02T00:00:00.000Z"}});
    let (status, created, _) = flow
        .xrpc(
            &mut dpop,
            reqwest::Method::POST,
            "com.atproto.repo.createRecord",
            &access,
            Some(record.clone()),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let rkey = created["uri"].as_str().unwrap().rsplit('/').next().unwrap();
    let (_, got) = flow
        .pds
        .get(
            "com.atproto.repo.getRecord",
            None,
            &[
                ("repo", &alice.did),
                ("collection", "app.bsky.feed.post"),
                ("rkey", rkey),
            ],
        )
        .await;
    assert_eq!(got["value"]["text"], "via OAuth");
    let (status, session, _) = flow.session(&mut dpop, &access).await;
    assert_eq!(
        (status, session["did"].as_str()),
        (200, Some(alice.did.as_str()))
    );
    // App passwords are for the account's own sign-in, never an OAuth app's.
    let (status, body, _) = flow
        .xrpc(
            &mut dpop,
            reqwest::Method::POST,
            "com.atproto.server.createAppPassword",
            &access,
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (403, Some("Forbidden")));

    // The same proof twice: the second is a replay.
    let path = "/xrpc/com.atproto.server.getSession";
    let proof = dpop.proof("GET", &format!("{}{path}", flow.issuer), Some(&access));
    let (status, _, _) = flow
        .send_xrpc(reqwest::Method::GET, path, &access, &proof, None)
        .await;
    assert_eq!(status, 200);
    let (status, body, challenge) = flow
        .send_xrpc(reqwest::Method::GET, path, &access, &proof, None)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_dpop_proof"))
    );
    assert!(challenge.starts_with("DPoP "), "{challenge}");
    // Another key cannot use the token.
    let mut thief = Dpop {
        key: SigningKey::random(&mut rand::rngs::OsRng),
        nonce: dpop.nonce.clone(),
    };
    let (status, _, _) = flow.session(&mut thief, &access).await;
    assert_eq!(status, 401);
    // A proof for another method or without the token's hash is refused.
    let proof = dpop.proof("POST", &format!("{}{path}", flow.issuer), Some(&access));
    let (status, _, _) = flow
        .send_xrpc(reqwest::Method::GET, path, &access, &proof, None)
        .await;
    assert_eq!(status, 401);
    let proof = dpop.proof("GET", &format!("{}{path}", flow.issuer), None);
    let (status, _, _) = flow
        .send_xrpc(reqwest::Method::GET, path, &access, &proof, None)
        .await;
    assert_eq!(status, 401);
    // Without its proof, as a bearer token, it is nothing.
    let (status, _) = flow
        .pds
        .get("com.atproto.server.getSession", Some(&access), &[])
        .await;
    assert_eq!(status, 401);
    // A stale nonce earns a use_dpop_nonce challenge with a fresh one.
    let mut stale = Dpop {
        key: dpop.key.clone(),
        nonce: Some("stale".into()),
    };
    let (status, body, challenge) = flow.session(&mut stale, &access).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("use_dpop_nonce"))
    );
    assert!(
        challenge.contains(r#"error="use_dpop_nonce""#),
        "{challenge}"
    );

    // The code was single-use.
    let (status, body) = flow.redeem(&mut dpop, &code, &verifier).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // Refreshing rotates the token; the old one, used again, ends the session.
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let client_id = client_id();
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", client_id.as_str()),
        ("refresh_token", refresh.as_str()),
    ];
    let (status, rotated) = flow.post_form(&mut dpop, "/oauth/token", &form).await;
    assert_eq!(status, 200, "{rotated}");
    assert_ne!(rotated["refresh_token"], tokens["refresh_token"]);
    let fresh = rotated["access_token"].as_str().unwrap().to_owned();
    let (status, _, _) = flow.session(&mut dpop, &fresh).await;
    assert_eq!(status, 200);
    let mut other_key = Dpop {
        key: SigningKey::random(&mut rand::rngs::OsRng),
        nonce: dpop.nonce.clone(),
    };
    let next = rotated["refresh_token"].as_str().unwrap().to_owned();
    let form_next = [
        ("grant_type", "refresh_token"),
        ("client_id", client_id.as_str()),
        ("refresh_token", next.as_str()),
    ];
    let (status, body) = flow
        .post_form(&mut other_key, "/oauth/token", &form_next)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "refresh is bound to the key"
    );
    let (status, body) = flow.post_form(&mut dpop, "/oauth/token", &form).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, _, _) = flow.session(&mut dpop, &fresh).await;
    assert_eq!(status, 401, "a replayed refresh token revokes the session");
}

#[tokio::test]
async fn revoking_a_session_ends_its_tokens() {
    let flow = Flow::start().await;
    flow.pds.create_account("alice").await;
    let mut dpop = Dpop::new();
    let (code, verifier) = flow.code(&mut dpop).await;
    let (_, tokens) = flow.redeem(&mut dpop, &code, &verifier).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let response = flow
        .http
        .post(format!("{}/oauth/revoke", flow.pds.url))
        .form(&[("token", tokens["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, _, _) = flow.session(&mut dpop, &access).await;
    assert_eq!(status, 401);
    let client_id = client_id();
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", client_id.as_str()),
        ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
    ];
    let (status, body) = flow.post_form(&mut dpop, "/oauth/token", &form).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn requests_without_pkce_or_outside_the_clients_declaration_are_refused() {
    let flow = Flow::start().await;
    let mut dpop = Dpop::new();
    for (extra, error) in [
        (vec![("code_challenge", "")], "invalid_request"),
        (vec![("code_challenge_method", "plain")], "invalid_request"),
        (vec![("code_challenge_method", "")], "invalid_request"),
        (
            vec![("redirect_uri", "http://127.0.0.1/elsewhere")],
            "invalid_request",
        ),
        (
            vec![("redirect_uri", "https://evil.example/callback")],
            "invalid_request",
        ),
        (
            vec![("scope", "atproto transition:generic transition:chat.bsky")],
            "invalid_scope",
        ),
        (vec![("scope", "transition:generic")], "invalid_scope"),
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (
            vec![("client_id", "http://localhost:8080")],
            "invalid_client_metadata",
        ),
        (
            vec![("client_id", "https://127.0.0.1/client.json")],
            "invalid_client_metadata",
        ),
    ] {
        let (status, body, _) = flow.par(&mut dpop, &extra).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some(error)),
            "{extra:?}: {body}"
        );
    }
    // A proof is optional when pushing (the reference PDS's rule: the code is bound to a key
    // when it is redeemed), but one that is sent must hold.
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(b"v".repeat(43)));
    let form = [
        ("client_id", client_id()),
        ("response_type", "code".into()),
        ("redirect_uri", REDIRECT.into()),
        ("scope", "atproto".into()),
        ("state", "s".into()),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256".into()),
    ];
    let push = |proof: Option<&str>| {
        let mut request = flow
            .http
            .post(format!("{}/oauth/par", flow.pds.url))
            .form(&form);
        if let Some(proof) = proof {
            request = request.header("DPoP", proof);
        }
        request.send()
    };
    assert_eq!(push(None).await.unwrap().status(), 201);
    let response = push(Some("not.a.proof")).await.unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_dpop_proof");
}

#[tokio::test]
async fn the_code_needs_its_verifier_and_redirect_uri_and_the_page_its_csrf_token() {
    let flow = Flow::start().await;
    flow.pds.create_account("alice").await;
    let mut dpop = Dpop::new();

    // The form without the page's cookie (another site posting it) is refused.
    let (_, body, _) = flow.par(&mut dpop, &[]).await;
    let request_uri = body["request_uri"].as_str().unwrap();
    let (_, html, cookie) = flow.page(request_uri).await;
    assert!(html.contains("alice.test"), "the login hint fills the form");
    assert!(html.contains("transition:generic"), "the scopes are listed");
    let csrf = cookie.split_once('=').unwrap().1.to_owned();
    let allow = [
        ("identifier", "alice.test"),
        ("password", "alice-pw"),
        ("decision", "allow"),
    ];
    let (status, location, _) = flow
        .submit(
            request_uri,
            "arroba_oauth_csrf=forged-forged-forged",
            &csrf,
            &allow,
        )
        .await;
    assert_eq!((status, location.as_str()), (403, ""));
    // A wrong password shows the page again.
    let wrong = [
        ("identifier", "alice.test"),
        ("password", "nope"),
        ("decision", "allow"),
    ];
    let (status, _, html) = flow.submit(request_uri, &cookie, &csrf, &wrong).await;
    assert_eq!(status, 401);
    assert!(html.contains("Wrong handle or password"));
    // Denying sends the refusal back to the client.
    let (status, location, _) = flow
        .submit(request_uri, &cookie, &csrf, &[("decision", "deny")])
        .await;
    assert_eq!(status, 303);
    assert!(
        location.starts_with(REDIRECT) && location.contains("error=access_denied"),
        "{location}"
    );
    // The request was answered: it cannot be approved now.
    let (status, _, _) = flow.submit(request_uri, &cookie, &csrf, &allow).await;
    assert_eq!(status, 400);

    let (code, verifier) = flow.code(&mut dpop).await;
    let (status, body) = flow.redeem(&mut dpop, &code, &"x".repeat(50)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "wrong verifier"
    );
    let (code, verifier2) = flow.code(&mut dpop).await;
    let client_id = client_id();
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", client_id.as_str()),
        ("redirect_uri", "http://127.0.0.1/other"),
        ("code", code.as_str()),
        ("code_verifier", verifier2.as_str()),
    ];
    let (status, body) = flow.post_form(&mut dpop, "/oauth/token", &form).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "redirect mismatch"
    );
    // A code is redeemed with the key its request was pushed with, only.
    let (code, verifier3) = flow.code(&mut dpop).await;
    let mut other = Dpop::new();
    let (status, body) = flow.redeem(&mut other, &code, &verifier3).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "other key"
    );
    let _ = verifier;
    let (status, body) = flow
        .post_form(
            &mut dpop,
            "/oauth/token",
            &[
                ("grant_type", "password"),
                ("client_id", client_id.as_str()),
            ],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
}

/// The parameters that authenticate a confidential client with `assertion`.
fn authenticated(assertion: &str) -> [(&'static str, &str); 2] {
    [
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion),
    ]
}

/// The loopback development client asking for `scope`.
fn loopback_client(scope: &str) -> String {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", scope)
        .finish();
    format!("http://localhost?{query}")
}

/// Serves `document` at `/client-metadata.json` on a loopback port; returns its URL.
async fn serve_client_metadata(document: impl Fn(&str) -> Value) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client_id = format!(
        "http://{}/client-metadata.json",
        listener.local_addr().unwrap()
    );
    let body = document(&client_id);
    let app = axum::Router::new().route(
        "/client-metadata.json",
        axum::routing::get(move || async move { axum::Json(body) }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    client_id
}

#[tokio::test]
async fn a_confidential_client_authenticates_with_its_signed_assertion_every_time() {
    let mut flow = Flow::start().await;
    flow.pds.create_account("alice").await;
    let key = SigningKey::random(&mut rand::rngs::OsRng);
    let jwk = public_jwk(&key, "k1");
    // A metadata document served over HTTP from a loopback address: dev mode allows both, as
    // the client library's allowHttp does (production requires a public https URL).
    flow.client_id = serve_client_metadata(move |id| {
        json!({
            "client_id": id, "client_name": "Confidential Test App",
            "redirect_uris": [REDIRECT], "scope": "atproto transition:generic",
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
            "token_endpoint_auth_method": "private_key_jwt",
            "token_endpoint_auth_signing_alg": "ES256",
            "application_type": "web", "dpop_bound_access_tokens": true,
            "jwks": {"keys": [jwk]},
        })
    })
    .await;
    let assertion = |signer: &SigningKey, kid: &str, aud: &str| {
        let now = chrono::Utc::now().timestamp();
        sign_jwt(
            signer,
            &json!({"alg": "ES256", "kid": kid, "typ": "JWT"}),
            &json!({"iss": flow.client_id, "sub": flow.client_id, "aud": aud,
                "jti": hex::encode(rand::random::<[u8; 12]>()), "iat": now, "exp": now + 60}),
        )
    };
    let mut dpop = Dpop::new();

    // Without an assertion, with another key's, for another audience, or replayed: refused.
    let stranger = SigningKey::random(&mut rand::rngs::OsRng);
    let replayed = assertion(&key, "k1", &flow.issuer);
    let (status, _, _) = flow.par(&mut dpop, &authenticated(&replayed)).await;
    assert_eq!(status, 201);
    for (why, a) in [
        ("none", String::new()),
        ("another key", assertion(&stranger, "k1", &flow.issuer)),
        ("unknown kid", assertion(&key, "k2", &flow.issuer)),
        (
            "another audience",
            assertion(&key, "k1", "https://elsewhere.example"),
        ),
        ("replayed", replayed),
    ] {
        let (status, body, _) = flow.par(&mut dpop, &authenticated(&a)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_client")),
            "{why}: {body}"
        );
    }

    // The whole flow, authenticating at each step.
    let a = assertion(&key, "k1", &flow.issuer);
    let (code, verifier) = flow.code_with(&mut dpop, &authenticated(&a)).await;
    let (status, body) = flow.redeem(&mut dpop, &code, &verifier).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_client")),
        "{body}"
    );
    let a = assertion(&key, "k1", &flow.issuer);
    let (code, verifier) = flow.code_with(&mut dpop, &authenticated(&a)).await;
    let a = assertion(&key, "k1", &flow.issuer);
    let (status, tokens) = flow
        .redeem_with(&mut dpop, &code, &verifier, &authenticated(&a))
        .await;
    assert_eq!(status, 200, "{tokens}");
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let unauthenticated = [
        ("grant_type", "refresh_token"),
        ("client_id", flow.client_id.as_str()),
        ("refresh_token", refresh),
    ];
    let (status, body) = flow
        .post_form(&mut dpop, "/oauth/token", &unauthenticated)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_client"))
    );
    let a = assertion(&key, "k1", &flow.issuer);
    let mut signed = unauthenticated.to_vec();
    signed.extend(authenticated(&a));
    let (status, body) = flow.post_form(&mut dpop, "/oauth/token", &signed).await;
    assert_eq!(status, 200, "{body}");
    let access = body["access_token"].as_str().unwrap().to_owned();
    let (status, _, _) = flow.session(&mut dpop, &access).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn granular_scopes_grant_exactly_their_collections_blobs_and_nothing_else() {
    let mut flow = Flow::start().await;
    let alice = flow.pds.create_account("alice").await;
    let scope = "atproto repo:app.bsky.feed.like?action=create blob:image/*";
    flow.client_id = loopback_client(scope);
    let mut dpop = Dpop::new();
    let (code, verifier) = flow.code_with(&mut dpop, &[("scope", scope)]).await;
    let (status, tokens) = flow.redeem(&mut dpop, &code, &verifier).await;
    assert_eq!(
        (status, tokens["scope"].as_str()),
        (200, Some(scope)),
        "{tokens}"
    );
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let post = reqwest::Method::POST;
    let write = |collection: &str| {
        json!({"repo": alice.did, "collection": collection,
            "record": {"subject": {"uri": "at://did:plc:aaaaaaaaaaaaaaaaaaaaaaaa/app.bsky.feed.post/3k2a4b5c6d7e2",
                "cid": "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"},
             "text": "x", "createdAt": "2026-12-02T00:00:00.000Z"}})
    };

    let (status, like, _) = flow
        .xrpc(
            &mut dpop,
            post.clone(),
            "com.atproto.repo.createRecord",
            &access,
            Some(write("app.bsky.feed.like")),
        )
        .await;
    assert_eq!(status, 200, "{like}");
    let (status, body, challenge) = flow
        .xrpc(
            &mut dpop,
            post.clone(),
            "com.atproto.repo.createRecord",
            &access,
            Some(write("app.bsky.feed.post")),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("ScopeMissingError")),
        "{body}"
    );
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("repo:app.bsky.feed.post?action=create")
    );
    let rkey = like["uri"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let (status, _, _) = flow
        .xrpc(
            &mut dpop,
            post.clone(),
            "com.atproto.repo.deleteRecord",
            &access,
            Some(json!({"repo": alice.did, "collection": "app.bsky.feed.like", "rkey": rkey})),
        )
        .await;
    assert_eq!(status, 403, "create was granted, not delete");
    // One write outside the grant refuses the whole batch.
    let batch = json!({"repo": alice.did, "writes": [
        {"$type": "com.atproto.repo.applyWrites#create", "collection": "app.bsky.feed.like", "value": write("app.bsky.feed.like")["record"]},
        {"$type": "com.atproto.repo.applyWrites#create", "collection": "app.bsky.feed.post", "value": {"text": "x", "createdAt": "2026-12-02T00:00:00.000Z"}},
    ]});
    let (status, _, _) = flow
        .xrpc(
            &mut dpop,
            post.clone(),
            "com.atproto.repo.applyWrites",
            &access,
            Some(batch),
        )
        .await;
    assert_eq!(status, 403);
    let (_, listed) = flow
        .pds
        .get(
            "com.atproto.repo.listRecords",
            None,
            &[("repo", &alice.did), ("collection", "app.bsky.feed.like")],
        )
        .await;
    assert_eq!(
        listed["records"].as_array().unwrap().len(),
        1,
        "nothing of the batch was written"
    );

    // Blobs: images only.
    let upload = |bytes: &'static [u8], dpop: &Dpop| {
        let path = "/xrpc/com.atproto.repo.uploadBlob";
        let proof = dpop.proof("POST", &format!("{}{path}", flow.issuer), Some(&access));
        flow.http
            .post(format!("{}{path}", flow.pds.url))
            .header("Authorization", format!("DPoP {access}"))
            .header("DPoP", proof)
            .header("Content-Type", "*/*")
            .body(bytes)
    };
    let png: &[u8] =
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
    let response = upload(png, &dpop).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let response = upload(b"%PDF-1.4 not an image", &dpop)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "blob:image/* grants no PDF");

    // Identity and account management, service calls: none granted.
    let (status, _, _) = flow
        .xrpc(
            &mut dpop,
            post.clone(),
            "com.atproto.identity.updateHandle",
            &access,
            Some(json!({"handle": "alice2.test"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _, _) = flow
        .xrpc(
            &mut dpop,
            post.clone(),
            "com.atproto.server.deactivateAccount",
            &access,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _, _) = flow
        .xrpc(
            &mut dpop,
            reqwest::Method::GET,
            "com.atproto.server.getServiceAuth?aud=did:web:api.bsky.app%23bsky_appview",
            &access,
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (status, _, _) = flow
        .xrpc(
            &mut dpop,
            post,
            "com.atproto.server.requestEmailConfirmation",
            &access,
            None,
        )
        .await;
    assert_eq!(status, 403);
    // Who the account is, yes; its e-mail address, no.
    let (status, session, _) = flow.session(&mut dpop, &access).await;
    assert_eq!(
        (status, session["did"].as_str()),
        (200, Some(alice.did.as_str()))
    );
    assert!(session.get("email").is_none(), "{session}");
}

/// The cookies a response sets, as one `Cookie` header value.
fn cookies_of(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_browser_signed_in_once_is_offered_its_account_and_prompt_none_answers_at_once() {
    let flow = Flow::start().await;
    let alice = flow.pds.create_account("alice").await;
    let mut dpop = Dpop::new();
    let open = |request_uri: String, cookies: Vec<String>| {
        let flow = &flow;
        async move {
            let response = flow
                .http
                .get(format!("{}/oauth/authorize", flow.pds.url))
                .query(&[
                    ("client_id", flow.client_id.as_str()),
                    ("request_uri", &request_uri),
                ])
                .header("cookie", cookies.join("; "))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let location = response
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let set = cookies_of(&response);
            (status, location, set, response.text().await.unwrap())
        }
    };
    let submit =
        |request_uri: String, cookies: Vec<String>, fields: Vec<(&'static str, String)>| {
            let flow = &flow;
            async move {
                let csrf = cookies
                    .iter()
                    .find_map(|c| c.strip_prefix("arroba_oauth_csrf="))
                    .unwrap()
                    .to_owned();
                let mut form = vec![
                    ("client_id", flow.client_id.clone()),
                    ("request_uri", request_uri),
                    ("csrf", csrf),
                ];
                form.extend(fields);
                let response = flow
                    .http
                    .post(format!("{}/oauth/authorize", flow.pds.url))
                    .header("cookie", cookies.join("; "))
                    .form(&form)
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let location = response
                    .headers()
                    .get("location")
                    .map(|l| l.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                (
                    status,
                    location,
                    cookies_of(&response),
                    response.text().await.unwrap(),
                )
            }
        };
    let uri_of = |body: &Value| body["request_uri"].as_str().unwrap().to_owned();

    // First time: the password, after which the browser holds a sign-in cookie.
    let (_, body, _) = flow.par(&mut dpop, &[]).await;
    let (_, _, csrf_cookie, html) = open(uri_of(&body), vec![]).await;
    assert!(!html.contains("Continue as"), "nobody is signed in yet");
    let fields = vec![
        ("identifier", "alice.test".to_owned()),
        ("password", "alice-pw".to_owned()),
        ("decision", "allow".to_owned()),
    ];
    let (status, location, set, _) = submit(uri_of(&body), csrf_cookie.clone(), fields).await;
    assert_eq!(status, 303);
    assert!(location.contains("code="));
    let device: Vec<String> = set
        .into_iter()
        .filter(|c| c.starts_with("arroba_oauth_device="))
        .collect();
    assert_eq!(device.len(), 1, "the sign-in is remembered");
    let browser: Vec<String> = csrf_cookie.iter().chain(&device).cloned().collect();

    // Next time: the account is offered and chosen without a password.
    let (_, body, _) = flow.par(&mut dpop, &[]).await;
    let (_, _, _, html) = open(uri_of(&body), browser.clone()).await;
    assert!(html.contains("Continue as @alice.test"), "{html}");
    let choose = vec![("account", alice.did.clone())];
    let (status, location, _, _) = submit(uri_of(&body), browser.clone(), choose.clone()).await;
    assert_eq!(status, 303);
    assert!(location.contains("code="), "{location}");
    // Another browser (no sign-in cookie) cannot choose the account.
    let (_, body, _) = flow.par(&mut dpop, &[]).await;
    let (status, location, _, html) =
        submit(uri_of(&body), csrf_cookie.clone(), choose.clone()).await;
    assert_eq!((status, location.as_str()), (401, ""));
    assert!(html.contains("not signed in on this browser"));
    // prompt=login asks for the password again.
    let (_, body, _) = flow.par(&mut dpop, &[("prompt", "login")]).await;
    let (_, _, _, html) = open(uri_of(&body), browser.clone()).await;
    assert!(!html.contains("Continue as"));
    let (status, _, _, _) = submit(uri_of(&body), browser.clone(), choose).await;
    assert_eq!(status, 401);

    // prompt=none: a code at once for what was granted before...
    let (_, body, _) = flow.par(&mut dpop, &[("prompt", "none")]).await;
    let (status, location, _, _) = open(uri_of(&body), browser.clone()).await;
    assert_eq!(status, 303);
    let answer: std::collections::HashMap<String, String> = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert!(answer.contains_key("code"), "{location}");
    // ...consent_required for more than that, login_required on a browser not signed in.
    let scope = "atproto transition:generic transition:chat.bsky";
    let mut wider = Flow {
        client_id: loopback_client(scope),
        ..flow
    };
    let (_, body, _) = wider
        .par(&mut dpop, &[("prompt", "none"), ("scope", scope)])
        .await;
    let response = wider
        .http
        .get(format!("{}/oauth/authorize", wider.pds.url))
        .query(&[
            ("client_id", wider.client_id.as_str()),
            ("request_uri", &uri_of(&body)),
        ])
        .header("cookie", browser.join("; "))
        .send()
        .await
        .unwrap();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.contains("error=consent_required"), "{location}");
    wider.client_id = client_id();
    let (_, body, _) = wider.par(&mut dpop, &[("prompt", "none")]).await;
    let response = wider
        .http
        .get(format!("{}/oauth/authorize", wider.pds.url))
        .query(&[
            ("client_id", wider.client_id.as_str()),
            ("request_uri", &uri_of(&body)),
        ])
        .send()
        .await
        .unwrap();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.contains("error=login_required"), "{location}");
}

#[tokio::test]
async fn on_dynamodb_the_flow_keeps_its_state_in_the_kv_table_with_expiry() {
    use arroba::storage::dynamo::DynamoConfig;
    use aws_sdk_dynamodb::types::AttributeValue;
    let prefix = format!("t{}-", hex::encode(rand::random::<[u8; 6]>()));
    let config = DynamoConfig::new(
        prefix.clone(),
        Some(arroba::storage::KeySealer::ephemeral()),
    );
    let sdk = crate::common::sdk_config().await;
    let storage = arroba::storage::DynamoStorage::with_sdk_config(&sdk, config);
    storage.create_tables().await.unwrap();
    let storage: std::sync::Arc<dyn arroba::storage::Storage> = std::sync::Arc::new(storage);
    let dir = tempfile::tempdir().unwrap();
    let blobs: std::sync::Arc<dyn arroba::storage::BlobStore> = std::sync::Arc::new(
        arroba::storage::DiskBlobStore::new(dir.path().join("blobs")),
    );
    let flow = Flow::serve(Pds::start_with(dir, storage, blobs, &[]).await).await;
    let alice = flow.pds.create_account("alice").await;
    let mut dpop = Dpop::new();
    let (code, verifier) = flow.code(&mut dpop).await;
    let (status, tokens) = flow.redeem(&mut dpop, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let record = json!({"repo": alice.did, "collection": "app.bsky.feed.post",
        "record": {"text": "on DynamoDB", "createdAt": "2026-12-02T00:00:00.000Z"}});
    let (status, _, _) = flow
        .xrpc(
            &mut dpop,
            reqwest::Method::POST,
            "com.atproto.repo.createRecord",
            &access,
            Some(record),
        )
        .await;
    assert_eq!(status, 200);
    // The code was taken; the same proof twice is refused across the table.
    let (status, body) = flow.redeem(&mut dpop, &code, &verifier).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let path = "/xrpc/com.atproto.server.getSession";
    let proof = dpop.proof("GET", &format!("{}{path}", flow.issuer), Some(&access));
    let (first, _, _) = flow
        .send_xrpc(reqwest::Method::GET, path, &access, &proof, None)
        .await;
    let (second, _, _) = flow
        .send_xrpc(reqwest::Method::GET, path, &access, &proof, None)
        .await;
    assert_eq!((first, second), (200, 401));

    // The session is an item with DynamoDB's TTL attribute at the session's end.
    let sid = tokens["refresh_token"]
        .as_str()
        .unwrap()
        .split('.')
        .next()
        .unwrap();
    let item = aws_sdk_dynamodb::Client::new(&sdk)
        .get_item()
        .table_name(format!("{prefix}kv"))
        .key("ns", AttributeValue::S("oauth_sessions".into()))
        .key("item_key", AttributeValue::S(sid.into()))
        .send()
        .await
        .unwrap()
        .item
        .expect("the session is stored");
    let expires: i64 = item["expires_at"].as_n().unwrap().parse().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!((expires - now - 14 * 24 * 3600).abs() < 60, "{expires}");
}

#[tokio::test]
async fn proxied_calls_carry_the_oauth_accounts_identity_within_its_rpc_scopes() {
    use crate::common::service::Service;
    const APP_VIEW: &str = "did:web:appview.test";
    let app_view = Service::start(APP_VIEW, "").await;
    let pds = Pds::start(&[
        ("PDS_BSKY_APP_VIEW_URL", app_view.url.as_str()),
        ("PDS_BSKY_APP_VIEW_DID", APP_VIEW),
    ])
    .await;
    app_view.set_plc_url(&pds.plc_url);
    let mut flow = Flow::serve(pds).await;
    let alice = flow.pds.create_account("alice").await;
    let get = reqwest::Method::GET;

    // transition:generic: any AppView call, in alice's name.
    let mut dpop = Dpop::new();
    let (code, verifier) = flow.code(&mut dpop).await;
    let (_, tokens) = flow.redeem(&mut dpop, &code, &verifier).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let (status, body, _) = flow
        .xrpc(
            &mut dpop,
            get.clone(),
            "app.bsky.feed.getTimeline",
            &access,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let seen = app_view.seen().pop().expect("the AppView was called");
    assert_eq!(seen.nsid, "app.bsky.feed.getTimeline");
    assert_eq!(seen.claims["iss"], alice.did);
    assert_eq!(seen.claims["aud"], APP_VIEW);
    assert_eq!(seen.claims["lxm"], "app.bsky.feed.getTimeline");

    // One method at that service, and only that one.
    let scope = "atproto rpc:app.bsky.actor.getProfile?aud=did:web:appview.test%23bsky_appview";
    flow.client_id = loopback_client(scope);
    let (code, verifier) = flow.code_with(&mut dpop, &[("scope", scope)]).await;
    let (status, tokens) = flow.redeem(&mut dpop, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let narrow = tokens["access_token"].as_str().unwrap().to_owned();
    let calls = app_view.seen().len();
    let (status, body, _) = flow
        .xrpc(
            &mut dpop,
            get.clone(),
            &format!("app.bsky.actor.getProfile?actor={}", alice.did),
            &narrow,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body, _) = flow
        .xrpc(&mut dpop, get, "app.bsky.feed.getTimeline", &narrow, None)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("ScopeMissingError"))
    );
    assert_eq!(
        app_view.seen().len(),
        calls + 1,
        "the refused call never left the PDS"
    );
}

#[tokio::test]
async fn with_e_mail_two_factor_on_the_page_asks_for_the_mailed_code() {
    let flow = Flow::start().await;
    let alice = flow.pds.create_account("alice").await;
    let post = |nsid: &'static str, body: Value| flow.pds.post(nsid, Some(&alice.access), body);
    post("com.atproto.server.requestEmailConfirmation", json!({})).await;
    let code = flow.pds.last_code_to("alice@example.com");
    post(
        "com.atproto.server.confirmEmail",
        json!({"email": "alice@example.com", "token": code}),
    )
    .await;
    post("com.atproto.server.requestEmailUpdate", json!({})).await;
    let code = flow.pds.last_code_to("alice@example.com");
    let (status, _) = post(
        "com.atproto.server.updateEmail",
        json!({"email": "alice@example.com", "emailAuthFactor": true, "token": code}),
    )
    .await;
    assert_eq!(status, 200);

    let mut dpop = Dpop::new();
    let (_, body, _) = flow.par(&mut dpop, &[]).await;
    let request_uri = body["request_uri"].as_str().unwrap();
    let (_, _, cookie) = flow.page(request_uri).await;
    let csrf = cookie.split_once('=').unwrap().1.to_owned();
    let password = [
        ("identifier", "alice.test"),
        ("password", "alice-pw"),
        ("decision", "allow"),
    ];
    // The password alone mails a code and asks for it.
    let (status, location, html) = flow.submit(request_uri, &cookie, &csrf, &password).await;
    assert_eq!((status, location.as_str()), (401, ""));
    assert!(html.contains(r#"name="code""#), "{html}");
    assert_eq!(flow.pds.mails().pop().unwrap().subject, "Your sign-in code");
    let code = flow.pds.last_code_to("alice@example.com");
    let wrong = [
        ("identifier", "alice.test"),
        ("password", "alice-pw"),
        ("decision", "allow"),
        ("code", "AAAAA-BBBBB"),
    ];
    let (status, _, html) = flow.submit(request_uri, &cookie, &csrf, &wrong).await;
    assert_eq!(status, 401);
    assert!(html.contains("wrong or has expired"));
    let right = [
        ("identifier", "alice.test"),
        ("password", "alice-pw"),
        ("decision", "allow"),
        ("code", code.as_str()),
    ];
    let (status, location, _) = flow.submit(request_uri, &cookie, &csrf, &right).await;
    assert_eq!(status, 303);
    assert!(location.contains("code="), "{location}");
}
