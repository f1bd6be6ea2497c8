//! Waiting for the signal to stop. `serve` gets SIGTERM/SIGINT handling from actix-web's
//! server (which then drains requests before the rest shuts down in order);
//! `worker` uses [`signalled`].

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
