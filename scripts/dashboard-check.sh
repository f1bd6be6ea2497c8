#!/usr/bin/env bash
# The dashboard check: start the native topology (scripts/native-cluster.sh), drive
# mixed traffic through HAProxy, let Prometheus scrape, then evaluate every query of
# every panel in grafana/dashboards/*.json through Prometheus' HTTP API. Fails if any
# query errors or returns no series, or if a dashboard names a metric no process
# exports. Also runs promtool on prometheus/ and validates docker-compose.yml.
# Bounded: about a minute; everything on 127.0.0.1; stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${DIR:-/tmp/shortener-dashboard-check}

need() { # command package
    command -v "$1" >/dev/null && return 0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null 2>&1 ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }
}
need promtool prometheus
need docker-compose docker-compose

echo "== promtool"
promtool check config prometheus/prometheus.yml
promtool check rules prometheus/alerts.yml
echo "== docker-compose config"
docker-compose -f docker-compose.yml config -q && echo "docker-compose.yml is valid"

trap 'scripts/native-cluster.sh stop "$DIR"' EXIT
scripts/native-cluster.sh start "$DIR"

echo "== traffic"
python3 - <<'PY'
import json, random, threading, time, urllib.request, urllib.error
BASE = "http://127.0.0.1:18080"
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k): return None
opener = urllib.request.build_opener(NoRedirect)
def call(method, path, body=None):
    req = urllib.request.Request(BASE + path, method=method, data=body,
                                 headers={"content-type": "application/json"} if body else {})
    try:
        with opener.open(req, timeout=5) as r: return r.status, r.read()
    except urllib.error.HTTPError as e: return e.code, e.read()
codes = []
for i in range(60):
    s, b = call("POST", "/api/v1/links", json.dumps({"url": f"https://example.com/{i}"}).encode())
    assert s == 201, (s, b)
    codes.append(json.loads(b)["code"])
counts = {}
lock = threading.Lock()
def run(stop):
    while time.time() < stop:
        r = random.random()
        if r < 0.90: s, _ = call("GET", "/" + random.choice(codes))
        elif r < 0.95: s, _ = call("GET", "/no-such-link")
        else: s, _ = call("POST", "/api/v1/links", json.dumps({"url": "https://example.com/x"}).encode())
        with lock: counts[s] = counts.get(s, 0) + 1
stop = time.time() + 8
threads = [threading.Thread(target=run, args=(stop,)) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print("responses by status:", dict(sorted(counts.items())))
assert not any(s >= 500 for s in counts), counts
PY
sleep 4 # a few more scrapes

echo "== panels"
python3 - grafana/dashboards/*.json <<'PY'
import json, re, sys, urllib.parse, urllib.request
PROM = "http://127.0.0.1:19090/api/v1/query?query="
failures, rows, names = [], [], set()
for path in sys.argv[1:]:
    dash = json.load(open(path))
    for panel in dash["panels"]:
        for t in panel.get("targets", []):
            expr = t["expr"]
            names.update(n for n in re.findall(r"\b((?:shortener|process)_[a-z_]+)\b", expr))
            query = expr.replace("$__rate_interval", "30s")
            try:
                r = json.load(urllib.request.urlopen(PROM + urllib.parse.quote(query), timeout=10))
            except Exception as e:
                r = {"status": "error", "error": str(e)}
            n = len(r.get("data", {}).get("result", [])) if r.get("status") == "success" else -1
            rows.append((dash["uid"].removeprefix("shortener-") + ": " + panel["title"], t.get("legendFormat", ""), n))
            if n <= 0:
                failures.append(f'{panel["title"]} / {t.get("legendFormat")}: {r.get("error", "no series")}')
width = max(len(r[0]) for r in rows)
for title, legend, n in rows:
    print(f"{title:<{width}}  {legend:<28} {n:>3} series")
exported = ""
for url in ["http://127.0.0.1:18081/metrics", "http://127.0.0.1:18090/metrics"]:
    exported += urllib.request.urlopen(url, timeout=5).read().decode()
types = set(re.findall(r"^# TYPE (\S+) ", exported, re.M))
for name in sorted(names):
    base = re.sub(r"_(bucket|count|sum)$", "", name)
    if name not in types and base not in types:
        failures.append(f"the dashboard uses {name}, which no process exports")
print(f"{len(rows)} queries in {sum(1 for _ in sys.argv[1:])} dashboard(s); {len(names)} metric names, all exported" if not failures else "")
if failures:
    print("FAILED:\n  " + "\n  ".join(failures))
    sys.exit(1)
PY
echo "dashboard check passed"
