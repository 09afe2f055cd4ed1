//! A shutdown token cloned into every task, triggered by SIGTERM/SIGINT or by the code itself
//! (after the mini-redis pattern, on a `watch` channel so late subscribers see it too).

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;

use crate::error::{Result, TelemetryError};

/// Clone into tasks; `wait()` resolves once shutdown is triggered (immediately if it already
/// was). Triggering is idempotent.
#[derive(Debug, Clone)]
pub struct Shutdown {
    sender: Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A token that only [`trigger`](Self::trigger) fires.
    pub fn new() -> Self {
        Self {
            sender: Arc::new(watch::Sender::new(false)),
        }
    }

    /// A token that SIGTERM (what Kubernetes and `docker stop` send) or SIGINT (Ctrl-C) also
    /// fire. Must be called inside a tokio runtime.
    pub fn with_signal_handlers() -> Result<Self> {
        let shutdown = Self::new();
        shutdown.listen_for_signals()?;
        Ok(shutdown)
    }

    /// Installs the SIGTERM/SIGINT handlers for this token. The handlers are registered before
    /// this returns, so a signal arriving right after start-up is not lost.
    pub fn listen_for_signals(&self) -> Result<()> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(TelemetryError::NoRuntime {
                what: "Shutdown::listen_for_signals",
            });
        }
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term =
                signal(SignalKind::terminate()).map_err(|source| TelemetryError::Signal {
                    signal: "SIGTERM",
                    source,
                })?;
            let mut int =
                signal(SignalKind::interrupt()).map_err(|source| TelemetryError::Signal {
                    signal: "SIGINT",
                    source,
                })?;
            let shutdown = self.clone();
            tokio::spawn(async move {
                let name = tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                    // Nothing left to listen for once shutdown happened another way.
                    () = shutdown.wait() => return,
                };
                tracing::info!(signal = name, "shutdown requested");
                shutdown.trigger();
            });
        }
        #[cfg(not(unix))]
        {
            let shutdown = self.clone();
            tokio::spawn(async move {
                tokio::select! {
                    result = tokio::signal::ctrl_c() => {
                        if result.is_ok() {
                            tracing::info!(signal = "ctrl-c", "shutdown requested");
                            shutdown.trigger();
                        }
                    }
                    () = shutdown.wait() => {}
                }
            });
        }
        Ok(())
    }

    /// Starts the shutdown. Every `wait()` resolves.
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.sender.borrow()
    }

    /// Resolves when shutdown is triggered. The future owns what it needs (`'static`), so it
    /// can be handed to `OpsServer::serve` or moved into a spawned task.
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut receiver = self.sender.subscribe();
        async move {
            // Errors only when the sender is dropped, impossible while this receiver's token
            // (or any clone) lives; either way there is nothing left to wait for.
            let _ = receiver.wait_for(|triggered| *triggered).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn trigger_wakes_every_waiter_and_late_ones() {
        let shutdown = Shutdown::new();
        let waiters: Vec<_> = (0..3)
            .map(|_| tokio::spawn(shutdown.clone().wait()))
            .collect();
        assert!(!shutdown.is_triggered());
        shutdown.clone().trigger();
        for w in waiters {
            w.await.unwrap();
        }
        assert!(shutdown.is_triggered());
        shutdown.wait().await; // already triggered: immediate
        shutdown.trigger(); // idempotent
    }

    #[test]
    fn signal_handlers_need_a_runtime() {
        assert!(matches!(
            Shutdown::with_signal_handlers(),
            Err(TelemetryError::NoRuntime { .. })
        ));
    }
}
