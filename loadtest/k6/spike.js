// A spike: the mixed load at BASE_RATE, a jump to SPIKE_RATE within 5 s, held for
// SPIKE_FOR, then back. The thresholds hold across the whole run: the spike must not
// turn into errors or a p99 over the objective.
// Environment: see lib.js, and BASE_RATE (default 1000), SPIKE_RATE (default 5000),
// SPIKE_FOR (default 20s), SHORTEN_SHARE (default 0.05).
import { redirect, setupCodes, shorten, thresholds } from './lib.js';

const base = Number(__ENV.BASE_RATE || 1000);
const spike = Number(__ENV.SPIKE_RATE || 5000);
const SHORTEN_SHARE = Number(__ENV.SHORTEN_SHARE || 0.05);

export const options = {
  scenarios: {
    spike: {
      executor: 'ramping-arrival-rate',
      startRate: base,
      timeUnit: '1s',
      preAllocatedVUs: Number(__ENV.PRE_VUS || Math.ceil(spike / 50)),
      maxVUs: Number(__ENV.MAX_VUS || Math.ceil(spike / 10)),
      stages: [
        { target: base, duration: '10s' },
        { target: spike, duration: '5s' },
        { target: spike, duration: __ENV.SPIKE_FOR || '20s' },
        { target: base, duration: '5s' },
        { target: base, duration: '10s' },
      ],
    },
  },
  thresholds,
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'max'],
};

export const setup = setupCodes;
export default function (data) {
  if (Math.random() < SHORTEN_SHARE) shorten(); else redirect(data);
}
