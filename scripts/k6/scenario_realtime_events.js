// Realtime events: the timeline updates the application publishes while clients listen on
// GET /api/v1/events/stream (Server-Sent Events). k6 has no SSE client: the 2,000 listeners are
// the native engine's (loadtest-shard, docs/loadtest-scenarios.md); this script is the writer
// side, 2 updates a second for 10 minutes, p95 under 500 ms.
// Run: k6 run scripts/k6/scenario_realtime_events.js  (-e BASE_URL=... -e DURATION=... -e RATE_PER_MIN=...)
import http from 'k6/http';
import { check, group } from 'k6';
import exec from 'k6/execution';
import { BASE_URL, duration, params, ratePerMin, token } from './lib.js';

const KINDS = ['status_changed', 'comment_added', 'assignee_changed', 'eta_updated'];

export const options = {
  scenarios: {
    timeline_updates: {
      executor: 'constant-arrival-rate',
      rate: ratePerMin(120),
      timeUnit: '1m',
      duration: duration('10m'),
      preAllocatedVUs: 4,
      maxVUs: 40,
      tags: { flow: 'realtime' },
    },
  },
  thresholds: {
    'http_req_duration{scenario:timeline_updates}': ['p(95)<500'],
    'http_req_failed{scenario:timeline_updates}': ['rate<0.01'],
    'checks{scenario:timeline_updates}': ['rate>0.99'],
  },
  tags: { service: 'realtime', suite: 'playbook' },
};

export function setup() {
  return { token: token() };
}

export default function (data) {
  const n = exec.scenario.iterationInTest;
  group('timeline update', () => {
    const res = http.post(
      `${BASE_URL}/api/v1/timeline/events`,
      JSON.stringify({ timeline_id: `job-${n % 50}`, kind: KINDS[n % KINDS.length], sequence: n, at: new Date().toISOString() }),
      params(data.token, 'timeline_event', 'application/json'),
    );
    check(res, {
      'status is 201': (r) => r.status === 201,
      'has an event id': (r) => r.status === 201 && typeof r.json('event_id') === 'string',
    });
  });
}
