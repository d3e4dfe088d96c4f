// The read-heavy mix: per iteration 90% TOP20 reads, 9% exact ranks of a
// random member, 1% score writes, at RATE per second. setup() writes the
// MEMBERS members first, so every rank read finds its member.
//
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e RATE=500 -e MEMBERS=1000 loadtest/k6/mixed.js

import http from 'k6/http';
import { check } from 'k6';
import {
  BASE_URL, BOARD, options as baseOptions, randomMember, scenario, seedMembers, summary, writeScore,
} from './lib.js';

export const options = baseOptions({ mixed: scenario('mixed') }, ['top', 'rank', 'write']);

export function setup() {
  return seedMembers();
}

export function mixed() {
  const roll = Math.random() * 100;
  if (roll < 90) {
    const r = http.get(`${BASE_URL}/v1/boards/${BOARD}/top?limit=20`, { tags: { name: 'top' } });
    check(r, { 'top: 200': (res) => res.status === 200 });
  } else if (roll < 99) {
    const r = http.get(`${BASE_URL}/v1/boards/${BOARD}/members/${randomMember()}`, {
      tags: { name: 'rank' },
    });
    check(r, { 'rank: 200': (res) => res.status === 200 });
  } else {
    const r = writeScore(randomMember(), 1 + Math.floor(Math.random() * 100), 'incr');
    check(r, { 'write: 200': (res) => res.status === 200 });
  }
}

export function handleSummary(data) {
  return summary('mixed', data);
}
