// Shortens at a constant arrival rate (every link a new row on its shard).
// Environment: see lib.js (API_KEY), and RATE (default 200), DURATION (default 30s).
//   k6 run -e API_KEY=shk_… -e RATE=1000 loadtest/k6/shorten.js
import { constantRate, shorten, thresholds } from './lib.js';

export const options = {
  scenarios: { shorten: constantRate(200, '30s') },
  thresholds,
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'max'],
};

export default function () { shorten(); }
