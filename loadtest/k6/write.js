// Score writes: POST /v1/boards/{BOARD}/scores, `incr` of a random member
// among user:0..MEMBERS-1 by 1..100, at RATE per second.
//
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e RATE=200 -e MEMBERS=1000 loadtest/k6/write.js

import { check } from 'k6';
import { options as baseOptions, randomMember, scenario, summary, writeScore } from './lib.js';

export const options = baseOptions({ write: scenario('write') }, ['write']);

export function write() {
  const r = writeScore(randomMember(), 1 + Math.floor(Math.random() * 100), 'incr');
  check(r, { 'write: 200 applied': (res) => res.status === 200 && res.json('applied') === true });
}

export function handleSummary(data) {
  return summary('write', data);
}
