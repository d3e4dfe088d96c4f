// Exact rank of random members: GET /v1/boards/{BOARD}/members/user:N, N in
// 0..MEMBERS-1, at RATE per second. setup() first writes those MEMBERS
// members, so every read finds its member (a 404 would count as failed).
//
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e RATE=200 -e MEMBERS=1000 loadtest/k6/rank.js

import http from 'k6/http';
import { check } from 'k6';
import {
  BASE_URL, BOARD, options as baseOptions, randomMember, scenario, seedMembers, summary,
} from './lib.js';

export const options = baseOptions({ rank: scenario('rank') }, ['rank']);

export function setup() {
  return seedMembers();
}

export function rank() {
  const r = http.get(`${BASE_URL}/v1/boards/${BOARD}/members/${randomMember()}`, {
    tags: { name: 'rank' },
  });
  check(r, { 'rank: 200 with a rank': (res) => res.status === 200 && res.json('rank') >= 1 });
}

export function handleSummary(data) {
  return summary('rank', data);
}
