//! Tests of [`super`].

use super::*;

#[test]
fn requests_are_counted_by_route_method_and_status() {
    let m = Metrics::new();
    m.record_request("/{code}", "GET", 302, 0.0004);
    m.record_request("/{code}", "GET", 302, 0.2);
    m.record_request("/{code}", "GET", 404, 0.001);
    let text = m.render();
    assert!(
        text.contains(
            r#"shortener_http_requests_total{method="GET",route="/{code}",status="302"} 2"#
        ),
        "{text}"
    );
    assert!(text
        .contains(r#"shortener_http_requests_total{method="GET",route="/{code}",status="404"} 1"#));
    assert!(text.contains(
        r#"shortener_http_request_duration_seconds_bucket{route="/{code}",le="0.0005"} 1"#
    ));
    assert!(text.contains(r#"shortener_http_request_duration_seconds_count{route="/{code}"} 3"#));
}

#[test]
fn counters_follow_their_atomics_and_never_go_back() {
    let c = IntCounter::new("x", "x").unwrap();
    let a = AtomicU64::new(5);
    sync(&c, &a);
    assert_eq!(c.get(), 5);
    a.store(3, Ordering::Relaxed);
    sync(&c, &a);
    assert_eq!(c.get(), 5);
    a.store(9, Ordering::Relaxed);
    sync(&c, &a);
    assert_eq!(c.get(), 9);
}
