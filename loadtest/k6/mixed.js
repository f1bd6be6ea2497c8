// Mixed traffic for the compose stack's `loadtest` profile: 95% redirects of links
// this script created, 5% shortens, at a constant arrival rate.
// Environment: BASE_URL (default http://127.0.0.1:8080), RATE (requests/s, default
// 200), DURATION (default 30s).
import http from 'k6/http';
import { check } from 'k6';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:8080';

export const options = {
  scenarios: {
    mixed: {
      executor: 'constant-arrival-rate',
      rate: Number(__ENV.RATE || 200),
      timeUnit: '1s',
      duration: __ENV.DURATION || '30s',
      preAllocatedVUs: 50,
    },
  },
  thresholds: { http_req_failed: ['rate<0.001'], http_req_duration: ['p(99)<100'] },
};

export function setup() {
  const codes = [];
  for (let i = 0; i < 100; i++) {
    const r = http.post(`${BASE}/api/v1/links`, JSON.stringify({ url: `https://example.com/${i}` }),
      { headers: { 'content-type': 'application/json' } });
    codes.push(r.json('code'));
  }
  return { codes };
}

export default function (data) {
  if (Math.random() < 0.05) {
    const r = http.post(`${BASE}/api/v1/links`, JSON.stringify({ url: 'https://example.com/k6' }),
      { headers: { 'content-type': 'application/json' } });
    check(r, { 'shortened': (x) => x.status === 201 });
  } else {
    const code = data.codes[Math.floor(Math.random() * data.codes.length)];
    const r = http.get(`${BASE}/${code}`, { redirects: 0 });
    check(r, { 'redirected': (x) => x.status === 302 });
  }
}
