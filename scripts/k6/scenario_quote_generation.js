// Quote generation: POST /api/v1/quotes/generate with a medium payload (a customer and 12
// line items), 60 requests a minute for 20 minutes; p95 under 900 ms, checks on the answer.
// Run: k6 run scripts/k6/scenario_quote_generation.js  (-e BASE_URL=... -e DURATION=... -e RATE_PER_MIN=...)
import http from 'k6/http';
import { check, group } from 'k6';
import { SharedArray } from 'k6/data';
import exec from 'k6/execution';
import { BASE_URL, duration, params, ratePerMin, token } from './lib.js';

const ITEMS = 12;
const products = new SharedArray('products', () => JSON.parse(open('./data/products.json')));

export const options = {
  scenarios: {
    quote_generation: {
      executor: 'constant-arrival-rate',
      rate: ratePerMin(60),
      timeUnit: '1m',
      duration: duration('20m'),
      preAllocatedVUs: 4,
      maxVUs: 60,
      tags: { flow: 'quotes' },
    },
  },
  thresholds: {
    'http_req_duration{scenario:quote_generation}': ['p(95)<900'],
    'http_req_failed{scenario:quote_generation}': ['rate<0.01'],
    'checks{scenario:quote_generation}': ['rate>0.99'],
  },
  tags: { service: 'quotes', suite: 'playbook' },
};

export function setup() {
  return { token: token() };
}

export default function (data) {
  const n = exec.scenario.iterationInTest;
  const items = [];
  for (let i = 0; i < ITEMS; i++) {
    const p = products[(n + i) % products.length];
    items.push({ sku: p.sku, description: p.name, quantity: 1 + ((n + i) % 4), unit_price: p.unit_price });
  }
  const payload = JSON.stringify({
    request_id: `quote-${n}`,
    customer: { id: `cust-${n % 500}`, segment: ['smb', 'mid', 'enterprise'][n % 3], country: 'DE' },
    currency: 'EUR',
    valid_days: 30,
    items,
  });
  group('generate quote', () => {
    const res = http.post(`${BASE_URL}/api/v1/quotes/generate`, payload, params(data.token, 'quotes_generate', 'application/json'));
    check(res, {
      'status is 200': (r) => r.status === 200,
      'has a quote id': (r) => r.status === 200 && typeof r.json('quote_id') === 'string',
      'every item priced': (r) => r.status === 200 && r.json('items') === ITEMS,
    });
  });
}
