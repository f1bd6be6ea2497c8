#!/usr/bin/env python3
"""Writes grafana/dashboards/*.json from the panel lists below: the one place to edit
dashboards. `scripts/dashboard-check.sh` evaluates every query they contain against a
real Prometheus.

    python3 scripts/dashboards.py
"""
import json
import os

R = "[$__rate_interval]"
JOBS = 'job=~"shortener|shortener-worker"'


def q(expr, legend):
    return (expr, legend)


OVERVIEW = [
    ("Requests per second by route", "reqps", [q(f"sum by (route) (rate(shortener_http_requests_total{R}))", "{{route}}")], "Every request, by route template."),
    ("5xx error ratio", "percentunit", [q(f'(sum(rate(shortener_http_requests_total{{status=~"5.."}}{R})) or vector(0)) / sum(rate(shortener_http_requests_total{R}))', "5xx / all")], "Alert at 1%."),
    ("Responses by status", "reqps", [q(f"sum by (status) (rate(shortener_http_requests_total{R}))", "{{status}}")], "404 and 410 are normal answers of the redirect path."),
    ("Latency p50 / p95 / p99 by route vs the 100 ms objective", "s", [
        q(f"histogram_quantile(0.5, sum by (le, route) (rate(shortener_http_request_duration_seconds_bucket{R})))", "p50 {{route}}"),
        q(f"histogram_quantile(0.95, sum by (le, route) (rate(shortener_http_request_duration_seconds_bucket{R})))", "p95 {{route}}"),
        q(f"histogram_quantile(0.99, sum by (le, route) (rate(shortener_http_request_duration_seconds_bucket{R})))", "p99 {{route}}"),
        q("vector(0.1)", "objective 100 ms")], "Server-side latency, per route template."),
    ("Cache hit ratio by tier", "percentunit", [q(f'sum by (tier) (rate(shortener_cache_requests_total{{result="hit"}}{R})) / sum by (tier) (rate(shortener_cache_requests_total{{result=~"hit|miss"}}{R}))', "{{tier}}")], "L1 in process, L2 Redis."),
    ("Cache lookups by tier and result", "ops", [q(f"sum by (tier, result) (rate(shortener_cache_requests_total{R}))", "{{tier}} {{result}}")], "error: Redis failed; skipped: breaker open."),
    ("Redirect lookups reaching the database", "ops", [q(f"sum(rate(shortener_cache_loads_total{R}))", "loads")], "What the cache could not answer."),
    ("Redis circuit breaker", "short", [q("max(shortener_redis_breaker_state)", "0 closed, 1 open, 2 half-open")], "Open: redirects run on L1 and the databases."),
    ("Shard query p99", "s", [q(f"histogram_quantile(0.99, sum by (le, shard) (rate(shortener_shard_query_duration_seconds_bucket{R})))", "{{shard}}")], "Pool wait included."),
    ("Shard queries per second", "ops", [q(f"sum by (shard) (rate(shortener_shard_query_duration_seconds_count{R}))", "{{shard}}")], "The newest range takes every write."),
    ("Shard errors", "ops", [q(f"sum by (shard, kind) (rate(shortener_shard_errors_total{R})) or on() vector(0)", "{{shard}} {{kind}}")], "unavailable / timeout: the shard's links answer 503."),
    ("Shard pool connections", "short", [q("sum by (shard, state) (shortener_shard_pool_connections)", "{{shard}} {{state}}")], "size, available, waiting."),
    ("Clicks: enqueued, dropped, counted", "ops", [
        q(f"sum(rate(shortener_clicks_enqueued_total{R}))", "enqueued"),
        q(f"sum(rate(shortener_clicks_dropped_total{R}))", "dropped"),
        q(f"sum(rate(shortener_clicks_counted_total{R}))", "counted")], "Dropped: the queue was full."),
    ("Click queue depth", "short", [q("sum by (instance) (shortener_click_queue_depth)", "{{instance}}")], "Clicks buffered in each process."),
    ("Click worker batches and lag", "short", [
        q(f"sum(rate(shortener_click_worker_batches_total{R}))", "batches/s"),
        q("max(shortener_click_worker_lag_milliseconds) / 1000", "lag (s)")], "Lag: age of the newest click of the last batch."),
    ("Rate-limited requests", "reqps", [q(f"sum by (class) (rate(shortener_rate_limited_total{R}))", "{{class}}")], "429s by class (shorten, redirect)."),
    ("IDs issued and clock waits", "short", [
        q(f"sum(rate(shortener_ids_issued_total{R}))", "IDs/s"),
        q("sum(increase(shortener_id_clock_waits_total[1h]))", "clock waits (1h)"),
        q("sum(increase(shortener_id_clock_failures_total[1h]))", "clock failures (1h)")], "Waits: small backward clock steps waited out."),
    ("Process memory (RSS)", "bytes", [q(f"process_resident_memory_bytes{{{JOBS}}}", "{{instance}}")], ""),
    ("Process CPU", "percentunit", [q(f"rate(process_cpu_seconds_total{{{JOBS}}}{R})", "{{instance}}")], "1.0 = one core."),
    ("Open files", "short", [q(f"process_open_fds{{{JOBS}}}", "{{instance}}")], ""),
    ("Instances up", "short", [q(f"up{{{JOBS}}}", "{{job}} {{instance}}")], ""),
]

STORAGE = [
    ("Shard query latency p50 / p99", "s", [
        q(f"histogram_quantile(0.5, sum by (le, shard) (rate(shortener_shard_query_duration_seconds_bucket{R})))", "p50 {{shard}}"),
        q(f"histogram_quantile(0.99, sum by (le, shard) (rate(shortener_shard_query_duration_seconds_bucket{R})))", "p99 {{shard}}")], "Per shard, all instances."),
    ("Shard queries per second by instance", "ops", [q(f"sum by (shard, instance) (rate(shortener_shard_query_duration_seconds_count{R}))", "{{shard}} {{instance}}")], ""),
    ("Shard errors by kind", "ops", [q(f"sum by (shard, kind) (rate(shortener_shard_errors_total{R}))", "{{shard}} {{kind}}")], "Every kind is present at 0."),
    ("Pool connections in use by instance", "short", [q('sum by (shard, instance) (shortener_shard_pool_connections{state="size"}) - sum by (shard, instance) (shortener_shard_pool_connections{state="available"})', "{{shard}} {{instance}}")], "size − available."),
    ("Requests waiting for a pooled connection", "short", [q('sum by (shard, instance) (shortener_shard_pool_connections{state="waiting"})', "{{shard}} {{instance}}")], "Above 0 for long: the pool is too small or the shard too slow."),
    ("Cache hit ratio by instance and tier", "percentunit", [q(f'sum by (instance, tier) (rate(shortener_cache_requests_total{{result="hit"}}{R})) / sum by (instance, tier) (rate(shortener_cache_requests_total{{result=~"hit|miss"}}{R}))', "{{instance}} {{tier}}")], ""),
    ("Redis errors and skipped calls", "ops", [q(f'sum by (instance, result) (rate(shortener_cache_requests_total{{tier="l2", result=~"error|skipped"}}{R}))', "{{instance}} {{result}}")], "skipped: the breaker was open."),
    ("Redis breaker by instance", "short", [q("shortener_redis_breaker_state", "{{instance}}")], "0 closed, 1 open, 2 half-open."),
    ("Store loads by instance", "ops", [q(f"sum by (instance) (rate(shortener_cache_loads_total{R}))", "{{instance}}")], "Redirects that reached a shard."),
    ("Replica lag", "s", [q("max by (shard, replica) (shortener_replica_lag_seconds)", "{{shard}} {{replica}}")], "How far each replica's replay is behind its primary at its last probe (the worst instance's view). Above database.replica_max_lag_ms it is not read."),
    ("Replicas up", "short", [q("min by (shard, replica, instance) (shortener_replica_up)", "{{shard}} {{replica}} {{instance}}")], "1: answered its last probe and replays. 0: its shard's redirect misses read the primary."),
    ("Redirect misses by the copy that answered", "reqps", [q(f"sum by (shard, source, reason) (rate(shortener_redirect_reads_total{R}))", "{{shard}} {{source}} {{reason}}")], "source=replica: a replica served it (fresh, or primary_down); source=primary: why the primary was asked (no_replica fit, not_replicated yet, replica_error); source=none: primary down and the replica may lack the link (503)."),
    ("Replica query p99", "s", [q(f"histogram_quantile(0.99, sum by (le, shard, replica) (rate(shortener_replica_query_duration_seconds_bucket{R})))", "{{shard}} {{replica}}")], "Pool wait included, per replica."),
]

CLICKS = [
    ("Clicks enqueued and dropped by instance", "ops", [
        q(f"sum by (instance) (rate(shortener_clicks_enqueued_total{R}))", "enqueued {{instance}}"),
        q(f"sum by (instance) (rate(shortener_clicks_dropped_total{R}))", "dropped {{instance}}")], ""),
    ("Click queue depth by instance", "short", [q("shortener_click_queue_depth", "{{instance}}")], "In-process buffer (in front of XADD with Redis Streams)."),
    ("Clicks counted, duplicates, reclaimed", "ops", [
        q(f"sum by (instance) (rate(shortener_clicks_counted_total{R}))", "counted {{instance}}"),
        q(f"sum by (instance) (rate(shortener_clicks_duplicate_total{R}))", "duplicates {{instance}}"),
        q(f"sum by (instance) (rate(shortener_clicks_reclaimed_total{R}))", "reclaimed {{instance}}")], "Duplicates: redeliveries, not counted twice."),
    ("Worker batches and failures", "ops", [
        q(f"sum by (instance) (rate(shortener_click_worker_batches_total{R}))", "batches {{instance}}"),
        q(f"sum by (instance) (rate(shortener_click_worker_failures_total{R}))", "failures {{instance}}")], ""),
    ("Worker lag", "ms", [q("shortener_click_worker_lag_milliseconds", "{{instance}}")], "Age of the newest click of the last committed batch."),
    ("Count rows written per click", "short", [q(f"sum(rate(shortener_click_rollup_rows_total{R})) / sum(rate(shortener_clicks_counted_total{R}))", "rows per click")], "One row per link and day per window: far below 1 when links repeat."),
    ("Click store query p99 by shard", "s", [q(f"histogram_quantile(0.99, sum by (le, shard) (rate(shortener_click_shard_query_duration_seconds_bucket{R})))", "{{shard}}")], "The click pool of each shard; a flush is one transaction per shard."),
    ("Click stream entries", "ops", [
        q(f"sum by (instance) (rate(shortener_click_stream_entries_total{R}))", "entries {{instance}}"),
        q(f"sum(rate(shortener_clicks_enqueued_total{R})) / sum(rate(shortener_click_stream_entries_total{R}))", "clicks per entry")], "Redis Streams: many clicks per entry."),
    ("Dropped share of clicks", "percentunit", [q(f"sum(rate(shortener_clicks_dropped_total{R})) / (sum(rate(shortener_clicks_enqueued_total{R})) + sum(rate(shortener_clicks_dropped_total{R})))", "dropped / offered")], "Alert on any drop."),
]

INSTANCES = [
    ("Requests per second by instance", "reqps", [q(f"sum by (instance) (rate(shortener_http_requests_total{R}))", "{{instance}}")], "HAProxy should split evenly."),
    ("p99 latency by instance", "s", [q(f"histogram_quantile(0.99, sum by (le, instance) (rate(shortener_http_request_duration_seconds_bucket{R})))", "{{instance}}")], ""),
    ("5xx by instance", "reqps", [q(f'sum by (instance) (rate(shortener_http_requests_total{{status=~"5.."}}{R})) or on() vector(0)', "{{instance}}")], ""),
    ("IDs issued by instance", "ops", [q(f"sum by (instance) (rate(shortener_ids_issued_total{R}))", "{{instance}}")], "Each instance has its own worker ID."),
    ("RSS by instance", "bytes", [q(f"process_resident_memory_bytes{{{JOBS}}}", "{{instance}}")], ""),
    ("CPU by instance", "percentunit", [q(f"rate(process_cpu_seconds_total{{{JOBS}}}{R})", "{{instance}}")], ""),
]

DASHBOARDS = {
    "overview": ("shortener: overview", OVERVIEW),
    "storage": ("shortener: shards and cache", STORAGE),
    "clicks": ("shortener: click analytics", CLICKS),
    "instances": ("shortener: instances", INSTANCES),
}


def dashboard(uid, title, panels):
    ds = {"type": "prometheus", "uid": "prometheus"}
    out = []
    for i, (name, unit, targets, desc) in enumerate(panels):
        out.append({
            "id": i + 1,
            "type": "timeseries",
            "title": name,
            "description": desc,
            "datasource": ds,
            "gridPos": {"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i // 2) * 8},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
            "targets": [
                {"refId": chr(65 + j), "datasource": ds, "expr": e, "legendFormat": l}
                for j, (e, l) in enumerate(targets)
            ],
        })
    links = [{"title": t, "url": f"/d/shortener-{u}", "type": "link"} for u, (t, _) in DASHBOARDS.items() if u != uid]
    return {
        "uid": f"shortener-{uid}",
        "title": title,
        "tags": ["shortener"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"},
        "links": links,
        "panels": out,
    }


if __name__ == "__main__":
    here = os.path.join(os.path.dirname(__file__), "..", "grafana", "dashboards")
    for uid, (title, panels) in DASHBOARDS.items():
        with open(os.path.join(here, f"{uid}.json"), "w") as f:
            json.dump(dashboard(uid, title, panels), f, indent=2)
            f.write("\n")
        print(f"{uid}.json: {len(panels)} panels")
