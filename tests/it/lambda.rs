//! The Lambda entry point's request path: real API Gateway v2 (HTTP API) and Function URL event
//! JSON, parsed by `lambda_http`, run through the same router, answered as Lambda responses
//! (binary CARs base64-encoded).

use crate::common::pds::Pds;
use base64::Engine;
use lambda_http::{Adapter, Context, LambdaEvent, Service, request::LambdaRequest};
use serde_json::{Value, json};

fn event(
    method: &str,
    path: &str,
    query: &str,
    headers: Value,
    body: Option<(String, bool)>,
    function_url: bool,
) -> String {
    let domain = if function_url {
        "abcdefg.lambda-url.us-east-1.on.aws"
    } else {
        "abc123.execute-api.us-east-1.amazonaws.com"
    };
    let mut e = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc123", "domainName": domain, "domainPrefix": "abc123",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9", "userAgent": "test"},
            "requestId": "req-1", "routeKey": "$default", "stage": "$default",
            "time": "26/Nov/2026:03:00:00 +0000", "timeEpoch": 1795662000000u64
        },
        "isBase64Encoded": false
    });
    if let Some((b, base64)) = body {
        e["body"] = json!(b);
        e["isBase64Encoded"] = json!(base64);
    }
    e.to_string()
}

async fn invoke(pds: &Pds, event_json: &str) -> Value {
    let request: LambdaRequest = serde_json::from_str(event_json).unwrap();
    let mut adapter = Adapter::from(arroba::xrpc::router().with_state(pds.state.clone()));
    let response = adapter
        .call(LambdaEvent::new(request, Context::default()))
        .await
        .unwrap();
    serde_json::to_value(response).unwrap()
}

fn json_body(response: &Value) -> Value {
    serde_json::from_str(response["body"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn api_gateway_and_function_url_events_run_the_router() {
    let pds = Pds::start(&[]).await;
    let alice = pds.create_account("alice").await;

    let body = json!({"identifier": "alice.test", "password": "alice-pw"}).to_string();
    let r = invoke(
        &pds,
        &event(
            "POST",
            "/xrpc/com.atproto.server.createSession",
            "",
            json!({"content-type": "application/json"}),
            Some((body, false)),
            false,
        ),
    )
    .await;
    assert_eq!(r["statusCode"], 200, "{r}");
    let token = json_body(&r)["accessJwt"].as_str().unwrap().to_owned();

    // A Function URL event with a base64-encoded body.
    let record =
        json!({"repo": alice.did, "collection": "app.bsky.feed.post", "rkey": "3kaaaaaaaaa22",
        "record": {"text": "via lambda", "createdAt": "2026-01-01T00:00:00.000Z"}})
        .to_string();
    let encoded = base64::engine::general_purpose::STANDARD.encode(record);
    let headers =
        json!({"content-type": "application/json", "authorization": format!("Bearer {token}")});
    let r = invoke(
        &pds,
        &event(
            "POST",
            "/xrpc/com.atproto.repo.createRecord",
            "",
            headers,
            Some((encoded, true)),
            true,
        ),
    )
    .await;
    assert_eq!(r["statusCode"], 200, "{r}");
    assert_eq!(json_body(&r)["validationStatus"], "valid");

    let query = format!(
        "repo={}&collection=app.bsky.feed.post&rkey=3kaaaaaaaaa22",
        alice.did
    );
    let r = invoke(
        &pds,
        &event(
            "GET",
            "/xrpc/com.atproto.repo.getRecord",
            &query,
            json!({}),
            None,
            false,
        ),
    )
    .await;
    assert_eq!(r["statusCode"], 200);
    assert_eq!(json_body(&r)["value"]["text"], "via lambda");

    // getRepo answers a binary CAR, which a Lambda response must carry base64-encoded.
    let r = invoke(
        &pds,
        &event(
            "GET",
            "/xrpc/com.atproto.sync.getRepo",
            &format!("did={}", alice.did),
            json!({}),
            None,
            true,
        ),
    )
    .await;
    assert_eq!(r["statusCode"], 200);
    assert_eq!(r["isBase64Encoded"], true);
    let car = base64::engine::general_purpose::STANDARD
        .decode(r["body"].as_str().unwrap())
        .unwrap();
    let key = pds
        .state
        .resolver()
        .signing_key(&arroba::syntax::Did::parse(&alice.did).unwrap())
        .await
        .unwrap();
    let report = arroba::repo::verify::verify_repo_car(&car, Some(&key)).unwrap();
    assert_eq!(report.records, 1);

    // Errors keep their XRPC shape through the adapter.
    let r = invoke(
        &pds,
        &event(
            "GET",
            "/xrpc/com.atproto.repo.getRecord",
            "repo=did:bad&collection=x&rkey=y",
            json!({}),
            None,
            false,
        ),
    )
    .await;
    assert_eq!(r["statusCode"], 400);
    assert_eq!(json_body(&r)["error"], "InvalidRequest");
}
