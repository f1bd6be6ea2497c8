//! Answers every `GET /{code}` with the same `302`, as fast as actix-web can: no lookup,
//! no logging, no metrics. Under the same load generator and connection count, the
//! service's redirect throughput divided by this is the share of the ceiling it reaches.
//!
//!   ceiling 127.0.0.1:18999

use actix_web::{web, App, HttpResponse, HttpServer};

async fn redirect(_code: web::Path<String>) -> HttpResponse {
    HttpResponse::Found()
        .insert_header(("location", "https://example.com/"))
        .insert_header(("cache-control", "private, no-store"))
        .finish()
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18999".into());
    // One worker per core, like the service's default.
    HttpServer::new(|| App::new().route("/{code}", web::get().to(redirect)))
        .bind(listen)?
        .run()
        .await
}
