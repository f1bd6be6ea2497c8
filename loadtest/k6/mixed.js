// The design load: 95% redirects (Zipf-like over the seeded codes), 5% shortens, at a
// constant arrival rate, with the service's objectives as thresholds: under 0.1% failed
// and p99 under 100 ms (P99_MS), no iteration dropped for want of VUs.
// Environment: see lib.js, and RATE (default 10000), DURATION (default 60s),
// SHORTEN_SHARE (default 0.05).
//   k6 run -e CODES_FILE=seed-codes.txt -e API_KEY=shk_… -e RATE=5000 loadtest/k6/mixed.js
import { constantRate, redirect, setupCodes, shorten, thresholds } from './lib.js';

const SHORTEN_SHARE = Number(__ENV.SHORTEN_SHARE || 0.05);

export const options = {
  scenarios: { mixed: constantRate(10000, '60s') },
  thresholds,
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'max'],
};

export const setup = setupCodes;
export default function (data) {
  if (Math.random() < SHORTEN_SHARE) shorten(); else redirect(data);
}
