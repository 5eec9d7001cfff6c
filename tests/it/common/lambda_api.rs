//! A stand-in for the AWS Lambda Runtime API on a loopback socket, for running the built
//! `bootstrap` as Lambda would: the Lambda runtime test and the cold-start benchmark both use it
//! (the benchmark includes this file by path, without the rest of `common`).

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{Mutex, mpsc};

/// A Runtime API that hands out one API Gateway v2 event and forwards what the function posts
/// (its response, or an init error) to the returned channel.
pub async fn runtime_api(event: Value) -> (String, mpsc::UnboundedReceiver<(String, Value)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let pending = Arc::new(Mutex::new(Some(event)));
    let report = move |kind: &'static str| {
        let tx = tx.clone();
        move |body: String| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((
                    kind.to_owned(),
                    serde_json::from_str(&body).unwrap_or(Value::Null),
                ));
                "ok"
            }
        }
    };
    let app = axum::Router::new()
        .route(
            "/2018-06-01/runtime/invocation/next",
            axum::routing::get(move || {
                let pending = pending.clone();
                async move {
                    let Some(event) = pending.lock().await.take() else {
                        return std::future::pending().await;
                    };
                    (
                        [
                            ("lambda-runtime-aws-request-id", "r1"),
                            ("lambda-runtime-deadline-ms", "9999999999999"),
                            (
                                "lambda-runtime-invoked-function-arn",
                                "arn:aws:lambda:us-east-1:1:function:f",
                            ),
                        ],
                        axum::Json(event),
                    )
                }
            }),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            axum::routing::post(report("response")),
        )
        .route(
            "/2018-06-01/runtime/init/error",
            axum::routing::post(report("init-error")),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, rx)
}
