// TOP20 reads: GET /v1/boards/{BOARD}/top?limit=20 at RATE per second.
//
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e RATE=200 -e DURATION=10s loadtest/k6/top.js

import http from 'k6/http';
import { check } from 'k6';
import { BASE_URL, BOARD, options as baseOptions, scenario, summary } from './lib.js';

export const options = baseOptions({ top: scenario('top') }, ['top']);

export function top() {
  const r = http.get(`${BASE_URL}/v1/boards/${BOARD}/top?limit=20`, { tags: { name: 'top' } });
  check(r, { 'top: 200 with entries': (res) => res.status === 200 && Array.isArray(res.json('entries')) });
}

export function handleSummary(data) {
  return summary('top', data);
}
