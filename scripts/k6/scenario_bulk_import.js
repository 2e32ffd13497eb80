// Bulk import: POST /api/v1/import/bulk with a CSV of 200 records built per iteration, 40
// requests a minute for 15 minutes; p95 under 1 s and fewer than 0.5 % failed requests.
// Run: k6 run scripts/k6/scenario_bulk_import.js  (-e BASE_URL=... -e DURATION=... -e RATE_PER_MIN=...)
import http from 'k6/http';
import { check, group } from 'k6';
import { SharedArray } from 'k6/data';
import exec from 'k6/execution';
import { BASE_URL, duration, params, ratePerMin, token } from './lib.js';

const RECORDS = 200;

// Loaded once, shared read-only by every VU.
const customers = new SharedArray('customers', () =>
  open('./data/customers.csv')
    .split('\n')
    .slice(1)
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const [name, email, country, segment] = l.split(',');
      return { name, email, country, segment };
    }),
);

export const options = {
  scenarios: {
    bulk_import: {
      executor: 'constant-arrival-rate',
      rate: ratePerMin(40),
      timeUnit: '1m',
      duration: duration('15m'),
      preAllocatedVUs: 4,
      maxVUs: 40,
      tags: { flow: 'import' },
    },
  },
  thresholds: {
    'http_req_duration{scenario:bulk_import}': ['p(95)<1000'],
    'http_req_failed{scenario:bulk_import}': ['rate<0.005'],
    'checks{scenario:bulk_import}': ['rate>0.99'],
  },
  tags: { service: 'imports', suite: 'playbook' },
};

export function setup() {
  return { token: token() };
}

// 200 records, ids unique across every VU and iteration of the test.
function csv(iteration) {
  const rows = ['external_id,name,email,country,segment,credit_limit'];
  for (let i = 0; i < RECORDS; i++) {
    const c = customers[(iteration * RECORDS + i) % customers.length];
    const id = `imp-${iteration}-${i}`;
    rows.push(`${id},${c.name},${c.email},${c.country},${c.segment},${1000 + ((iteration + i) % 50) * 100}`);
  }
  return rows.join('\n') + '\n';
}

export default function (data) {
  const iteration = exec.scenario.iterationInTest;
  group('bulk import', () => {
    const res = http.post(`${BASE_URL}/api/v1/import/bulk`, csv(iteration), params(data.token, 'import_bulk', 'text/csv'));
    check(res, {
      'status is 202': (r) => r.status === 202,
      'all records accepted': (r) => r.status === 202 && r.json('accepted') === RECORDS,
    });
  });
}
