// Shared by the scenario scripts: the target, the auth token setup() obtains, request params.
import http from 'k6/http';
import { check, fail } from 'k6';

// Where the load goes; `-e BASE_URL=...` (the coordinator passes the scenario's target).
export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8480').replace(/\/+$/, '');

// Run-length and rate overrides (`-e DURATION=5s -e RATE_PER_MIN=600`) for short local runs;
// the defaults are the playbook's.
export function duration(playbook) {
  return __ENV.DURATION || playbook;
}
export function ratePerMin(playbook) {
  const r = Number(__ENV.RATE_PER_MIN || playbook);
  if (!Number.isFinite(r) || r <= 0) fail(`RATE_PER_MIN must be a positive number, got ${__ENV.RATE_PER_MIN}`);
  return r;
}

// setup(): one token for the whole test, as the application's clients obtain it.
export function token() {
  const res = http.post(
    `${BASE_URL}/api/v1/auth/token`,
    JSON.stringify({ client_id: 'k6-loadtest', client_secret: __ENV.CLIENT_SECRET || 'local-only' }),
    { headers: { 'Content-Type': 'application/json' }, tags: { name: 'auth_token' } },
  );
  if (!check(res, { 'token issued': (r) => r.status === 200 && typeof r.json('access_token') === 'string' })) {
    fail(`POST ${BASE_URL}/api/v1/auth/token answered ${res.status}: ${res.body}`);
  }
  return res.json('access_token');
}

export function params(tok, name, contentType) {
  return {
    headers: { 'Content-Type': contentType, Authorization: `Bearer ${tok}` },
    tags: { name },
  };
}
