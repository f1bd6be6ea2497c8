// Redirects over the seeded codes, popular ones Zipf-like, at a constant arrival rate.
// Environment: see lib.js, and RATE (requests/s, default 1000), DURATION (default 30s).
//   k6 run -e CODES_FILE=seed-codes.txt -e RATE=5000 loadtest/k6/redirect.js
import { constantRate, redirect, setupCodes, thresholds } from './lib.js';

export const options = {
  scenarios: { redirect: constantRate(1000, '30s') },
  thresholds,
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'max'],
};

export const setup = setupCodes;
export default function (data) { redirect(data); }
