//! SIGTERM triggers the shutdown token and stops the ops server. In its own test binary
//! (its own process) because the signal is sent to the whole process.

#![cfg(unix)]

use cdc_telemetry::FunctionContext;

#[tokio::test]
async fn sigterm_triggers_shutdown() {
    let ctx = FunctionContext::builder("signals")
        .with_signal_handlers()
        .build()
        .unwrap();
    let running = ctx
        .start_ops_server(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    assert!(!ctx.shutdown().is_triggered());

    // SAFETY: kill(getpid(), SIGTERM) has no memory-safety preconditions; the handler that
    // tokio installed above turns it into a wake-up instead of terminating the process.
    let sent = unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
    assert_eq!(sent, 0);

    ctx.shutdown().wait().await;
    running.stopped().await.unwrap();
}
