//! The local Lambda service against the real `lambda_runtime` loop (through `run_handler`) and
//! against a hand-driven Runtime API client for the crash case.

use std::time::Duration;

use cdc_lambda::{run_handler, InvokeOutcome, LambdaEnv, LocalLambda};
use serde_json::{json, Value};

fn http_client() -> reqwest::Client {
    cdc_telemetry::install_crypto_provider();
    reqwest::Client::new()
}

async fn invoke(endpoint: &str, function: &str, payload: Value) -> (Option<String>, Value) {
    let response = http_client()
        .post(format!("{endpoint}/2015-03-31/functions/{function}/invocations"))
        .json(&payload)
        .send()
        .await
        .expect("invoke request");
    assert_eq!(response.status(), 200, "the Invoke API answers 200 for success and for function errors");
    let error = response.headers().get("X-Amz-Function-Error").map(|v| v.to_str().unwrap_or_default().to_string());
    (error, response.json().await.expect("JSON body"))
}

#[tokio::test]
async fn lambda_runtime_loop_answers_invocations_and_reports_handler_errors() {
    let lambda = LocalLambda::start("echo", Duration::from_secs(10)).await.expect("start");
    for (k, v) in lambda.bootstrap_env() {
        // nextest runs each test in its own process: this environment is the test's own.
        std::env::set_var(k, v);
    }
    let env = LambdaEnv::detect().expect("complete environment").expect("Lambda mode");
    // The bootstrap's loop on its own thread, as a function's main would run it (lambda_runtime's
    // future is not Send, so it is not spawned onto this runtime).
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let _ = rt.block_on(run_handler(&env, |event: Value| async move {
            if event.get("fail").and_then(Value::as_bool) == Some(true) {
                return Err("asked to fail".into());
            }
            Ok(json!({"echo": event}))
        }));
    });

    let endpoint = lambda.invoke_endpoint();
    let (error, body) = invoke(&endpoint, "echo", json!({"n": 1})).await;
    assert_eq!((error, body), (None, json!({"echo": {"n": 1}})));

    let (error, body) = invoke(&endpoint, "echo", json!({"fail": true})).await;
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert_eq!(body["errorMessage"], "asked to fail", "{body}");

    // The loop survives a handler error.
    let (error, body) = invoke(&endpoint, "echo", json!({"n": 2})).await;
    assert_eq!((error, body), (None, json!({"echo": {"n": 2}})));

    let outcomes: Vec<bool> = lambda.invocations().iter().map(|i| matches!(i.outcome, InvokeOutcome::Success(_))).collect();
    assert_eq!(outcomes, [true, false, true]);

    let missing = http_client()
        .post(format!("{endpoint}/2015-03-31/functions/other/invocations"))
        .body("{}")
        .send()
        .await
        .expect("invoke request");
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn a_runtime_that_asks_again_without_answering_fails_the_open_invocation() {
    let lambda = LocalLambda::start("crashy", Duration::from_secs(30)).await.expect("start");
    let endpoint = lambda.invoke_endpoint();
    let runtime = format!("http://{}/2018-06-01/runtime/invocation/next", lambda.runtime_api());
    let http = http_client();

    let invoker = tokio::spawn({
        let endpoint = endpoint.clone();
        async move { invoke(&endpoint, "crashy", json!({"batch": 7})).await }
    });
    // First bootstrap takes the event, then "dies".
    let first = http.get(&runtime).send().await.expect("next");
    let request_id = first.headers()["Lambda-Runtime-Aws-Request-Id"].to_str().expect("id").to_string();
    assert!(first.headers().contains_key("Lambda-Runtime-Deadline-Ms"));
    assert_eq!(first.json::<Value>().await.expect("payload"), json!({"batch": 7}));

    // A restarted bootstrap asks for the next event; the abandoned one fails for its invoker.
    let second = tokio::spawn({
        let http = http.clone();
        async move { http.get(&runtime).send().await }
    });
    let (error, body) = invoker.await.expect("invoker");
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert_eq!(body["errorType"], "Runtime.ExitError", "{body}");
    second.abort();

    // A late answer to the abandoned request is refused.
    let late = http
        .post(format!("http://{}/2018-06-01/runtime/invocation/{request_id}/response", lambda.runtime_api()))
        .body("{}")
        .send()
        .await
        .expect("late response");
    assert_eq!(late.status(), 400);
}

#[tokio::test]
async fn an_unanswered_invocation_times_out_like_the_service() {
    let lambda = LocalLambda::start("slow", Duration::from_millis(300)).await.expect("start");
    let (error, body) = invoke(&lambda.invoke_endpoint(), "slow", json!({})).await;
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert_eq!(body["errorType"], "Sandbox.Timedout", "{body}");
}

#[tokio::test]
async fn a_payload_over_six_megabytes_is_refused_as_lambda_refuses_it() {
    let lambda = LocalLambda::start("big", Duration::from_secs(10)).await.expect("start");
    let endpoint = lambda.invoke_endpoint();
    let response = http_client()
        .post(format!("{endpoint}/2015-03-31/functions/big/invocations"))
        .body(vec![b' '; cdc_lambda::MAX_PAYLOAD_BYTES + 1])
        .send()
        .await
        .expect("invoke request");
    assert_eq!(response.status(), 413);
    assert_eq!(response.headers().get("x-amzn-ErrorType").and_then(|v| v.to_str().ok()), Some("RequestTooLargeException"));
    assert!(lambda.invocations().is_empty(), "nothing was queued");
}
