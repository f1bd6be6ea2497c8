// Shared by the k6 scripts: environment, the seeded codes, Zipf-like picking, requests.
//
// Environment (every script):
//   BASE_URL     the service (default http://127.0.0.1:8080)
//   CODES_FILE   codes to redirect to, one per line (`shortener seed --codes FILE`);
//                without it, setup() creates 100 links over HTTP and uses those
//   API_KEY      sent as `Authorization: Bearer …` on shortens (none: anonymous)
//   ZIPF         1 (default): popular codes follow a Zipf-like law (rank k drawn with
//                probability ∝ 1/k); 0: uniform
import http from 'k6/http';
import { check } from 'k6';
import { SharedArray } from 'k6/data';

export const BASE = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const ZIPF = (__ENV.ZIPF || '1') !== '0';

const seeded = new SharedArray('codes', () =>
  __ENV.CODES_FILE ? open(__ENV.CODES_FILE).split('\n').filter((c) => c.length > 0) : []);

const jsonHeaders = Object.assign(
  { 'content-type': 'application/json' },
  __ENV.API_KEY ? { authorization: `Bearer ${__ENV.API_KEY}` } : {},
);

// Codes for setup(): the seeded ones are read per VU from the shared array instead.
export function setupCodes() {
  if (seeded.length > 0) return { codes: null };
  const codes = [];
  for (let i = 0; i < 100; i++) {
    const r = http.post(`${BASE}/api/v1/links`, JSON.stringify({ url: `https://example.com/k6/${i}` }),
      { headers: jsonHeaders });
    if (r.status !== 201) throw new Error(`setup: shorten answered ${r.status}: ${r.body}`);
    codes.push(r.json('code'));
  }
  return { codes };
}

// A code: rank k (1-based) with probability ∝ 1/k (continuous approximation, O(1)).
export function pick(data) {
  const codes = data.codes || seeded;
  const n = codes.length;
  const i = ZIPF ? Math.min(n - 1, Math.floor(Math.pow(n, Math.random())) - 1) : Math.floor(Math.random() * n);
  return codes[i];
}

export function redirect(data) {
  const r = http.get(`${BASE}/${pick(data)}`, { redirects: 0, tags: { name: 'redirect' } });
  check(r, { redirected: (x) => x.status === 302 || x.status === 301 });
}

export function shorten() {
  const r = http.post(`${BASE}/api/v1/links`,
    JSON.stringify({ url: `https://example.com/k6/${__VU}/${__ITER}` }),
    { headers: jsonHeaders, tags: { name: 'shorten' } });
  check(r, { shortened: (x) => x.status === 201 });
}

// A constant-arrival-rate scenario of RATE/s for DURATION.
export function constantRate(defaultRate, defaultDuration) {
  const rate = Number(__ENV.RATE || defaultRate);
  return {
    executor: 'constant-arrival-rate',
    rate,
    timeUnit: '1s',
    duration: __ENV.DURATION || defaultDuration,
    preAllocatedVUs: Number(__ENV.PRE_VUS || Math.max(20, Math.ceil(rate / 50))),
    maxVUs: Number(__ENV.MAX_VUS || Math.max(100, Math.ceil(rate / 10))),
  };
}

export const thresholds = {
  http_req_failed: ['rate<0.001'],
  http_req_duration: [`p(99)<${__ENV.P99_MS || 100}`],
  dropped_iterations: [`count<${__ENV.MAX_DROPPED || 1}`],
};
