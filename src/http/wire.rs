//! The HTTP server on the wire, so that every error the service sends is JSON, even the
//! ones actix-web's HTTP/1 dispatcher writes itself before any handler runs: `400` for a
//! request it cannot parse (a malformed request line or header, a request line over
//! its buffer), `408` for a request head that does not arrive in time, `431` for
//! headers too large. It writes those with an empty body and offers no hook to change
//! them, so each connection is wrapped in [`JsonErrors`], which recognises exactly those
//! heads in what the dispatcher writes and sends a JSON error instead.
//!
//! The server is assembled as actix-web's `HttpServer::listen` does it (the same
//! keep-alive and timeouts), from `actix-server` and `actix-http`, with the wrapper
//! between the accepted TCP stream and the HTTP/1 service.

use std::io;
use std::net::TcpListener;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use actix_http::body::MessageBody;
use actix_http::{HttpService, KeepAlive, Request, Response};
use actix_rt::net::TcpStream;
use actix_server::Server;
use actix_service::{
    fn_service, map_config, IntoServiceFactory, ServiceFactory, ServiceFactoryExt as _,
};
use actix_web::dev::AppConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Keep-alive and timeouts, as actix-web's `HttpServer` sets them by default.
const KEEP_ALIVE: Duration = Duration::from_secs(5);
const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The response heads the dispatcher writes on its own, each with the JSON that
/// replaces its empty body.
const OWN_ERRORS: [(&[u8], &str); 3] = [
    (
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
        r#"{"error":{"code":"malformed_request","message":"the request is not well-formed HTTP (its request line, a header, or their size)"}}"#,
    ),
    (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n",
        r#"{"error":{"code":"request_timeout","message":"the request did not arrive in time"}}"#,
    ),
    (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n",
        r#"{"error":{"code":"headers_too_large","message":"the request's headers are too large"}}"#,
    ),
];

/// Every one of [`OWN_ERRORS`] has this in its status line, and no response of the
/// service's own has it at the start of a head: a cheap first look before the exact one.
const MARK: &[u8] = b" Request";

/// The searcher for [`MARK`], built once: building one per write cost more than the
/// search itself (about 400 instructions per response, measured with callgrind).
static MARK_FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(MARK));

/// Serves `factory`'s app on `listener`: `workers` threads (0: one per core), no signal
/// handling of its own (the one shutdown token stops it), requests in flight given
/// `shutdown_timeout` on stop.
///
/// # Errors
/// When the listener cannot be used.
pub fn serve<F, I, S, B>(
    listener: TcpListener,
    workers: usize,
    shutdown_timeout: Duration,
    factory: F,
) -> io::Result<Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: std::fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as actix_service::Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let addr = listener.local_addr()?;
    let mut builder = Server::build()
        .disable_signals()
        .shutdown_timeout(shutdown_timeout.as_secs());
    if workers > 0 {
        builder = builder.workers(workers);
    }
    // Tells each connection when a graceful stop begins, so idle keep-alive connections
    // close at once instead of holding the stop for their keep-alive timeout (what
    // HttpServer does too; the builder method is hidden from actix-http's docs).
    let stopping = builder.graceful_shutdown_signal();
    Ok(builder
        .listen("shortener-http", listener, move || {
            let app = factory()
                .into_factory()
                .map_err(|err| err.into().error_response());
            let stopping = stopping.clone();
            let http = HttpService::build()
                .graceful_shutdown_signal(move || {
                    let stopping = stopping.clone();
                    async move { stopping.notified().await }
                })
                .keep_alive(KeepAlive::Timeout(KEEP_ALIVE))
                .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
                .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
                .local_addr(addr)
                // The app reads neither the configured host nor the local address
                // (its URLs come from `public_url`), so the default config serves.
                .h1(map_config(app, |()| AppConfig::default()));
            fn_service(|io: TcpStream| async move {
                let peer = io.peer_addr().ok();
                Ok((JsonErrors::new(io), peer))
            })
            .and_then(http)
        })?
        .run())
}

/// A connection whose dispatcher-written error responses go out as JSON.
pub struct JsonErrors<T> {
    inner: T,
    /// Bytes of a replacement response still to write.
    pending: Vec<u8>,
    written: usize,
}

impl<T> JsonErrors<T> {
    /// Wraps a connection.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            pending: Vec::new(),
            written: 0,
        }
    }
}

/// Where in `buf` one of the dispatcher's own error heads starts, and which of
/// [`OWN_ERRORS`] it is.
fn find_own_error(buf: &[u8]) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(hit) = MARK_FINDER.find(&buf[from..]) {
        let at = from + hit;
        // The mark sits after "HTTP/1.1 400 Bad" or "HTTP/1.1 408", … : try each head.
        for (which, (head, _)) in OWN_ERRORS.iter().enumerate() {
            let offset = head
                .windows(MARK.len())
                .position(|w| w == MARK)
                .expect("every head has the mark");
            if let Some(start) = at.checked_sub(offset) {
                if buf[start..].starts_with(head) {
                    return Some((start, which));
                }
            }
        }
        from = at + MARK.len();
    }
    None
}

/// The JSON response that replaces `head` (an empty-bodied error head, up to and
/// including its blank line): the same status line and headers, a JSON body.
fn replacement(head: &[u8], json: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len() + json.len() + 64);
    let mut lines = head.split(|b| *b == b'\n');
    if let Some(status) = lines.next() {
        out.extend_from_slice(status);
        out.push(b'\n');
    }
    out.extend_from_slice(b"content-type: application/json\r\n");
    out.extend_from_slice(format!("content-length: {}\r\n", json.len()).as_bytes());
    for line in lines {
        if line.is_empty() || line == b"\r" || line.starts_with(b"content-length:") {
            continue;
        }
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(json.as_bytes());
    out
}

impl<T: AsyncWrite + Unpin> JsonErrors<T> {
    /// Writes what is left of a replacement; ready once it is all out.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonErrors<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonErrors<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        match find_own_error(buf) {
            // What comes before the error head goes out as it is; the head is handled
            // when the dispatcher writes again from there.
            Some((start, _)) if start > 0 => {
                Pin::new(&mut this.inner).poll_write(cx, &buf[..start])
            }
            Some((_, which)) => match memchr::memmem::find(buf, b"\r\n\r\n") {
                Some(end) => {
                    let head_len = end + 4;
                    this.pending = replacement(&buf[..head_len], OWN_ERRORS[which].1);
                    crate::metrics::count_refused(which);
                    this.written = 0;
                    // The dispatcher's head counts as written; the replacement goes out
                    // now or on the next write, flush or shutdown.
                    let _ = this.poll_pending(cx)?;
                    Poll::Ready(Ok(head_len))
                }
                // A head split across writes: rare enough to send as it is.
                None => Pin::new(&mut this.inner).poll_write(cx, buf),
            },
            None => Pin::new(&mut this.inner).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dispatchers_own_bodies_carry_declared_codes_of_their_status() {
        for (i, (head, body)) in OWN_ERRORS.into_iter().enumerate() {
            let json: serde_json::Value = serde_json::from_str(body).unwrap();
            let code = json["error"]["code"].as_str().unwrap();
            let code = crate::error::Code::ALL
                .iter()
                .find(|c| c.as_str() == code)
                .unwrap_or_else(|| panic!("{code} is not a declared Code"));
            assert_eq!(crate::metrics::REFUSED_CODES[i], *code, "counted as");
            let status = format!(" {} ", code.kind().status());
            assert!(
                head.starts_with(format!("HTTP/1.1{status}").as_bytes()),
                "{code}"
            );
        }
    }

    #[test]
    fn the_dispatchers_own_heads_are_found_and_nothing_else() {
        let own = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
        assert!(matches!(find_own_error(own), Some((0, _))));
        let after = [&b"HTTP/1.1 302 Found\r\ncontent-length: 0\r\n\r\n"[..], own].concat();
        assert_eq!(find_own_error(&after).map(|(at, _)| at), Some(41));
        for ours in [
            &b"HTTP/1.1 302 Found\r\ncontent-length: 0\r\nlocation: https://e.com/ Request\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 88\r\ncontent-type: application/json\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 20\r\n\r\n{\"m\":\" Request\"}",
        ] {
            assert_eq!(find_own_error(ours), None, "{}", String::from_utf8_lossy(ours));
        }
    }

    #[test]
    fn a_replacement_keeps_the_status_and_headers_and_carries_json() {
        let head = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\ndate: x\r\n\r\n";
        let json = r#"{"error":{}}"#;
        let out = String::from_utf8(replacement(head, json)).unwrap();
        assert_eq!(
            out,
            "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n\
             content-length: 12\r\nconnection: close\r\ndate: x\r\n\r\n{\"error\":{}}"
        );
    }
}
