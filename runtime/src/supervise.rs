//! Supervision of background tasks (the gateway's refresher and purger).
//!
//! A background task that panics must not vanish silently while the process
//! keeps answering from a view nobody refreshes any more. [`supervise`] runs
//! the task on its own tokio task, and when it panics logs the panic, counts
//! it in `standings_task_restarts_total{task}`, marks the task as not running
//! (so `/readyz` answers 503) and starts a fresh one after a back-off. The
//! task reports each completed pass with [`Supervised::beat`]; it counts as
//! running again only from its first pass after the restart.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// What readiness and metrics know of one supervised task.
#[derive(Debug)]
pub struct Supervised {
    /// The `task` label of its metrics and log lines.
    name: &'static str,
    /// True from the task's first completed pass until it dies.
    running: AtomicBool,
    /// How often it was restarted after a panic.
    restarts: AtomicU64,
}

impl Supervised {
    /// A task that has not completed a pass yet.
    pub fn new(name: &'static str) -> Arc<Self> {
        Arc::new(Self {
            name,
            running: AtomicBool::new(false),
            restarts: AtomicU64::new(0),
        })
    }

    /// The task's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Called by the task after each completed pass.
    pub fn beat(&self) {
        if !self.running.swap(true, Ordering::Relaxed) {
            metrics::gauge!("standings_task_running", "task" => self.name).set(1.0);
        }
    }

    /// True while the task runs and has completed a pass since it started.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    /// How often the task was restarted after a panic.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    fn stopped(&self) {
        self.running.store(false, Ordering::Relaxed);
        metrics::gauge!("standings_task_running", "task" => self.name).set(0.0);
    }
}

/// Runs `start()` on its own task until it returns or `shutdown` is
/// cancelled; each time it panics, logs and counts the panic and starts it
/// again after `backoff`. Returns once the task ended without panicking.
pub async fn supervise<F, Fut>(
    health: Arc<Supervised>,
    backoff: Duration,
    shutdown: CancellationToken,
    mut start: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let outcome = tokio::spawn(start()).await;
        health.stopped();
        let panic = match outcome {
            Ok(()) => return,
            Err(e) if e.is_panic() => e.into_panic(),
            Err(_) => return,
        };
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        health.restarts.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("standings_task_restarts_total", "task" => health.name).increment(1);
        tracing::error!(task = health.name, panic = %message, ?backoff, "background task panicked; restarting it");
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[tokio::test]
    async fn a_panicking_task_is_restarted_and_counted() {
        let health = Supervised::new("test");
        let runs = Arc::new(AtomicU32::new(0));
        let shutdown = CancellationToken::new();
        let (h, r) = (health.clone(), runs.clone());
        supervise(
            health.clone(),
            Duration::from_millis(1),
            shutdown,
            move || {
                let (h, r) = (h.clone(), r.clone());
                async move {
                    let n = r.fetch_add(1, Ordering::Relaxed);
                    h.beat();
                    if n < 2 {
                        panic!("injected failure {n}");
                    }
                }
            },
        )
        .await;
        assert_eq!(
            runs.load(Ordering::Relaxed),
            3,
            "two panics, then a clean end"
        );
        assert_eq!(health.restarts(), 2);
        assert!(!health.is_running(), "a task that ended is not running");
    }

    #[tokio::test]
    async fn shutdown_during_the_backoff_ends_supervision() {
        let health = Supervised::new("test");
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        supervise(
            health.clone(),
            Duration::from_secs(3600),
            shutdown,
            || async { panic!("always") },
        )
        .await;
        assert_eq!(health.restarts(), 1);
    }
}
