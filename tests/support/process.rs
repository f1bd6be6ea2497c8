//! The real `shortener` binary as a child process.

use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

/// The binary with none of the developer's `SHORTENER_*` variables.
pub fn binary() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shortener"));
    for (key, _) in std::env::vars() {
        if key.starts_with("SHORTENER_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// A free port on loopback (a tiny race with other processes is accepted).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when dropped.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Server {
    /// Sends SIGTERM and waits (at most 20 s) for the exit.
    pub fn sigterm_and_wait(&mut self) -> ExitStatus {
        let pid = self.0.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let started = Instant::now();
        loop {
            if let Some(exit) = self.0.try_wait().unwrap() {
                return exit;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Waits (at most 20 s) until `{base}/readyz` answers 200.
pub async fn wait_ready(base: &str) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if let Ok(r) = reqwest::get(format!("{base}/readyz")).await {
            if r.status() == StatusCode::OK {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{base} never became ready");
}

/// Runs `shortener migrate --config FILE` and asserts it succeeds; returns its stdout.
pub fn migrate(config: &std::path::Path) -> String {
    let out = binary()
        .arg("migrate")
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An HTTP client that does not follow redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Shortens `url` at `base`, asserting `201`; returns the link.
pub async fn shorten_at(client: &reqwest::Client, base: &str, url: &str) -> serde_json::Value {
    let r = client
        .post(format!("{base}/api/v1/links"))
        .json(&serde_json::json!({ "url": url }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json().await.unwrap()
}

/// `GET url` as JSON.
pub async fn get_json(client: &reqwest::Client, url: &str) -> serde_json::Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}
