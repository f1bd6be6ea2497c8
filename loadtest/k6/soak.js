// A soak: the mixed load at a steady RATE for a bounded DURATION (default 10m), to show
// that memory and latency stay flat. loadtest/soak.sh runs it and samples the server's
// RSS meanwhile.
// Environment: see lib.js, and RATE (default 3000), DURATION (default 10m),
// SHORTEN_SHARE (default 0.05).
import { constantRate, redirect, setupCodes, shorten, thresholds } from './lib.js';

const SHORTEN_SHARE = Number(__ENV.SHORTEN_SHARE || 0.05);

export const options = {
  scenarios: { soak: constantRate(3000, '10m') },
  thresholds,
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'max'],
};

export const setup = setupCodes;
export default function (data) {
  if (Math.random() < SHORTEN_SHARE) shorten(); else redirect(data);
}
