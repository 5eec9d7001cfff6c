//! A stand-in for the AWS Lambda Runtime API on a loopback socket, for running the built
//! `bootstrap` as Lambda would: the Lambda runtime test and the cold-start benchmark both use it
//! (the benchmark includes this file by path, without the rest of `common`).

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{Mutex, mpsc};

/// The bootstrap under test: this build's `lambda` binary, or the package `make lambda-check`
/// names in `ARROBA_LAMBDA_BOOTSTRAP`, started through `ARROBA_LAMBDA_RUNNER` when that is set
/// (qemu-user, for a package built for the other architecture).
pub fn bootstrap_command() -> tokio::process::Command {
    let binary = std::env::var_os("ARROBA_LAMBDA_BOOTSTRAP")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_lambda").into());
    let runner = std::env::var("ARROBA_LAMBDA_RUNNER").unwrap_or_default();
    let mut runner = runner.split_whitespace();
    match runner.next() {
        Some(program) => {
            let mut cmd = tokio::process::Command::new(program);
            cmd.args(runner).arg(binary);
            cmd
        }
        None => tokio::process::Command::new(binary),
    }
}

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

/// A Runtime API that serves any number of invocations: [`Invoker::call`] hands an HTTP request
/// to the function as an API Gateway v2 event at its next poll and returns its response.
#[derive(Clone)]
pub struct Invoker {
    /// The Runtime API's address (`AWS_LAMBDA_RUNTIME_API`).
    pub addr: String,
    queue: mpsc::UnboundedSender<(String, Value)>,
    waiting: Arc<Mutex<std::collections::HashMap<String, tokio::sync::oneshot::Sender<Value>>>>,
    init_errors: Arc<Mutex<Vec<Value>>>,
    /// Set once the function has asked for its first invocation (it started).
    polled: tokio::sync::watch::Sender<bool>,
}

/// A function's answer: status, headers and body (decoded from base64 when it says so).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: serde_json::Map<String, Value>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

impl Invoker {
    pub async fn start() -> Invoker {
        let (queue, rx) = mpsc::unbounded_channel::<(String, Value)>();
        let rx = Arc::new(Mutex::new(rx));
        let waiting: Arc<
            Mutex<std::collections::HashMap<String, tokio::sync::oneshot::Sender<Value>>>,
        > = Arc::default();
        let init_errors: Arc<Mutex<Vec<Value>>> = Arc::default();
        let responses = waiting.clone();
        let errors = init_errors.clone();
        let polled = tokio::sync::watch::channel(false).0;
        let started = polled.clone();
        let app = axum::Router::new()
            .route(
                "/2018-06-01/runtime/invocation/next",
                axum::routing::get(move || {
                    let rx = rx.clone();
                    started.send_replace(true);
                    async move {
                        let Some((id, event)) = rx.lock().await.recv().await else {
                            return std::future::pending().await;
                        };
                        (
                            [
                                ("lambda-runtime-aws-request-id", id),
                                ("lambda-runtime-deadline-ms", "9999999999999".to_owned()),
                                (
                                    "lambda-runtime-invoked-function-arn",
                                    "arn:aws:lambda:us-east-1:1:function:f".to_owned(),
                                ),
                            ],
                            axum::Json(event),
                        )
                    }
                }),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                axum::routing::post(
                    move |axum::extract::Path(id): axum::extract::Path<String>, body: String| {
                        let responses = responses.clone();
                        async move {
                            if let Some(tx) = responses.lock().await.remove(&id) {
                                let _ = tx.send(serde_json::from_str(&body).unwrap_or(Value::Null));
                            }
                            "ok"
                        }
                    },
                ),
            )
            .route(
                "/2018-06-01/runtime/init/error",
                axum::routing::post(move |body: String| {
                    let errors = errors.clone();
                    async move {
                        errors
                            .lock()
                            .await
                            .push(serde_json::from_str(&body).unwrap_or(Value::String(body)));
                        "ok"
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Invoker {
            addr,
            queue,
            waiting,
            init_errors,
            polled,
        }
    }

    /// Completes once the function has asked for an invocation.
    pub async fn started(&self) {
        let mut rx = self.polled.subscribe();
        let _ = rx.wait_for(|p| *p).await;
    }

    /// What the function reported as init errors.
    pub async fn init_errors(&self) -> Vec<Value> {
        self.init_errors.lock().await.clone()
    }

    /// Sends `method path?query` with `headers` and `body` through the function, as an HTTP API
    /// would (binary bodies base64-encoded), and waits up to 30 s for its answer.
    pub async fn call(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Answer {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let id = format!("r{}", hex::encode(rand::random::<[u8; 6]>()));
        let mut event = serde_json::json!({
            "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
            "headers": headers.iter().map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect::<serde_json::Map<_, _>>(),
            "requestContext": {"accountId": "1", "apiId": "a", "domainName": "pds.rehearsal.test", "domainPrefix": "pds",
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "rehearsal"},
                "requestId": id, "routeKey": "$default", "stage": "$default", "time": "01/Dec/2026:00:00:00 +0000", "timeEpoch": 0},
            "isBase64Encoded": false,
        });
        if let Some(bytes) = body {
            event["body"] = Value::String(b64.encode(bytes));
            event["isBase64Encoded"] = Value::Bool(true);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.waiting.lock().await.insert(id.clone(), tx);
        self.queue.send((id, event)).unwrap();
        let answer = tokio::time::timeout(std::time::Duration::from_secs(30), rx)
            .await
            .expect("the function answers within 30 s")
            .unwrap();
        let raw = answer["body"].as_str().unwrap_or_default();
        let body = if answer["isBase64Encoded"] == true {
            b64.decode(raw).unwrap()
        } else {
            raw.as_bytes().to_vec()
        };
        Answer {
            status: answer["statusCode"].as_u64().unwrap_or(0) as u16,
            headers: answer["headers"].as_object().cloned().unwrap_or_default(),
            body,
        }
    }
}
