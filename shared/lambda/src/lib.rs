//! AWS Lambda mode, shared by every event-triggered function.
//!
//! One binary, two modes (as in the AWS Lambda Rust runtime's examples): when
//! `AWS_LAMBDA_RUNTIME_API` is set the function runs the Lambda Runtime API loop and handles one
//! event per invocation; otherwise it is a long-lived service. [`LambdaEnv::detect`] decides,
//! [`run_handler`] runs the loop, and [`LocalLambda`] is a local Lambda service — the Invoke
//! API callers use and the Runtime API a function's bootstrap polls — so both sides are tested
//! for real on one machine.

mod env;
mod local;

pub use env::{LambdaEnv, LambdaEnvError};
pub use local::{Invocation, InvokeOutcome, LocalLambda, MAX_PAYLOAD_BYTES};

use std::future::Future;

use serde_json::Value;

/// The error type handlers return; its `Display` becomes the invocation's `errorMessage`.
pub type HandlerError = lambda_runtime::Error;

/// Runs the Lambda Runtime API loop with `handler` until `stop` resolves (the function's
/// SIGTERM: Lambda sends one before it shuts a sandbox down) and no invocation is in flight,
/// so an invocation that has started ends as it would have (its checkpoint taken, its answer
/// sent) rather than being cut off. A handler error is logged and becomes the invocation's
/// error, its alternate form (`{:#}`, an `anyhow` chain on one line) the `errorMessage`.
pub async fn serve<F, Fut, E, S>(env: &LambdaEnv, handler: F, stop: S) -> Result<(), HandlerError>
where
    F: Fn(Value) -> Fut,
    Fut: Future<Output = Result<Value, E>>,
    E: std::fmt::Display,
    S: Future<Output = ()>,
{
    let in_flight = tokio::sync::Mutex::new(());
    let handler = |event: Value| {
        let in_flight = &in_flight;
        let invocation = handler(event);
        async move {
            let _busy = in_flight.lock().await;
            invocation.await.map_err(|error| {
                let text = format!("{error:#}");
                tracing::error!(error = %text, "invocation failed");
                HandlerError::from(text)
            })
        }
    };
    tokio::select! {
        served = run_handler(env, handler) => served,
        _ = async {
            stop.await;
            let _idle = in_flight.lock().await;
        } => Ok(()),
    }
}

/// Runs the Lambda Runtime API loop with `handler` until the runtime stops it. A handler error
/// is reported to the Runtime API as the invocation's error (so the invoker sees a function
/// error and may retry); it does not end the loop.
pub async fn run_handler<F, Fut>(env: &LambdaEnv, handler: F) -> Result<(), HandlerError>
where
    F: Fn(Value) -> Fut,
    Fut: Future<Output = Result<Value, HandlerError>>,
{
    tracing::info!(function = %env.function_name, runtime_api = %env.runtime_api, "running under the Lambda Runtime API");
    let handler = &handler;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<Value>| async move { handler(event.payload).await },
    ))
    .await
}
