//! The one shutdown of a process: a single token, created at startup, that every
//! long-running task watches, and one order in which the parts stop.
//!
//! SIGTERM or Ctrl-C (or [`Shutdown::begin`], which tests and embedders call) cancels
//! the token. Then, in this order:
//!
//! 1. **HTTP**: the server stops accepting connections; requests in flight get
//!    `http.shutdown_timeout_s` to finish (so every redirect still offers its click).
//! 2. **Clicks**: the queue is closed to new clicks; the Redis Streams producer pushes
//!    its buffer out; the worker counts everything still queued and commits it. Both
//!    saw the token in step 1 and kept working until the queue closed, so no click
//!    offered by a request that was allowed to finish is lost.
//! 3. **Background tasks**: the cache's invalidation listener and tombstone replayer
//!    and the rate limiter's eviction end as soon as they see the token; the
//!    application waits for them. The admin listener (`admin_listen`) stops last of
//!    all before storage, so `/metrics` can be watched while clicks drain.
//! 4. **Storage**: the links' store and the click store close (pending writes committed,
//!    the embedded files checkpointed).
//!
//! [`crate::startup::Application::run_until_stopped`] carries this out for `serve`;
//! `worker` (in [`crate::commands`]) stops its worker, then its metrics server, then
//! its store.

use std::future::Future;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The process's shutdown token. Cloning it shares it.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    /// A token nobody has cancelled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels the token on SIGTERM or Ctrl-C.
    pub fn on_signals(&self) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = signalled() => {
                    tracing::info!("signal received: shutting down");
                    this.begin();
                }
                () = this.begun() => {}
            }
        })
    }

    /// Starts the shutdown (idempotent).
    pub fn begin(&self) {
        self.token.cancel();
    }

    /// Whether the shutdown has begun.
    #[cfg(test)]
    fn has_begun(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once the shutdown has begun.
    pub async fn begun(&self) {
        self.token.cancelled().await;
    }

    /// The token itself, for parts that take a [`CancellationToken`].
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Runs `task` until the shutdown begins, then drops it: for background loops that
    /// hold nothing that must be finished.
    pub fn spawn_until<F>(&self, task: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let token = self.token.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = task => {}
                () = token.cancelled() => {}
            }
        })
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn signalled() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_background_loop_ends_when_the_shutdown_begins() {
        let shutdown = Shutdown::new();
        let task = shutdown.spawn_until(std::future::pending());
        assert!(!task.is_finished());
        shutdown.begin();
        tokio::time::timeout(std::time::Duration::from_secs(1), task)
            .await
            .expect("the loop ended")
            .unwrap();
        assert!(shutdown.has_begun());
    }
}
