// Shared by the Standings k6 scripts: settings from the environment, the
// constant-arrival-rate scenario every script uses, seeding, and the JSON
// summary each run writes.
//
// Environment (every variable optional; defaults are low so a run on a
// laptop or in CI is gentle):
//   BASE_URL   where requests go        (default http://127.0.0.1:8080)
//   RATE       requests started per second (default 20)
//   DURATION   how long the scenario runs (default 10s)
//   MEMBERS    ids are user:0 .. user:MEMBERS-1 (default 1000, at most 100000)
//   BOARD      board name                (default global)
//   P99_MS     p99 threshold in ms       (default 200, the design target)
//   SUMMARY    where the JSON summary goes (default target/k6/<script>.json)

import http from 'k6/http';

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
export const RATE = positiveInt(__ENV.RATE, 20);
export const DURATION = __ENV.DURATION || '10s';
export const MEMBERS = Math.min(positiveInt(__ENV.MEMBERS, 1000), 100000);
export const BOARD = __ENV.BOARD || 'global';
export const P99_MS = positiveInt(__ENV.P99_MS, 200);

function positiveInt(raw, fallback) {
  const n = parseInt(raw || '', 10);
  return Number.isFinite(n) && n > 0 ? n : fallback;
}

// One constant-arrival-rate scenario: RATE iterations a second for DURATION,
// so the number of requests is bounded by RATE x DURATION, and the number
// of virtual users by maxVUs (an iteration that finds none free is dropped
// and counted in dropped_iterations, not queued).
export function scenario(exec) {
  return {
    executor: 'constant-arrival-rate',
    exec: exec,
    rate: RATE,
    timeUnit: '1s',
    duration: DURATION,
    preAllocatedVUs: Math.min(Math.max(2, Math.ceil(RATE / 50)), 50),
    maxVUs: Math.min(Math.max(10, Math.ceil(RATE / 10)), 200),
    gracefulStop: '5s',
  };
}

// Options shared by every script: no failed request or check at all, and
// p99 under P99_MS for each scenario as a whole (setup's seeding excluded)
// and for each named request kind in `names`.
export function options(scenarios, names, extraThresholds) {
  // Every check must pass too: a 200 with the wrong body is a failure.
  const thresholds = { http_req_failed: ['rate==0'], checks: ['rate==1'] };
  for (const name of Object.keys(scenarios)) {
    thresholds[`http_req_duration{scenario:${name}}`] = [`p(99)<${P99_MS}`];
  }
  for (const name of names) {
    thresholds[`http_req_duration{name:${name}}`] = [`p(99)<${P99_MS}`];
  }
  return {
    scenarios: scenarios,
    thresholds: Object.assign(thresholds, extraThresholds || {}),
    summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
    // Loopback only: never follow a redirect elsewhere.
    maxRedirects: 0,
    // setup() may seed up to 100000 members at a few hundred ms per batch.
    setupTimeout: '120s',
  };
}

export function memberId(i) {
  return `user:${i}`;
}

export function randomMember() {
  return memberId(Math.floor(Math.random() * MEMBERS));
}

const JSON_HEADERS = { 'Content-Type': 'application/json' };

// A score write as the API takes it.
export function writeScore(member, score, op, name) {
  return http.post(
    `${BASE_URL}/v1/boards/${BOARD}/scores`,
    JSON.stringify({ member: member, score: score, op: op }),
    { headers: JSON_HEADERS, tags: { name: name || 'write' } },
  );
}

// Writes user:0 .. user:MEMBERS-1 (a bounded count), 100 at a time, so
// exact-rank reads find every member they ask for. Throws if any write
// fails: a run against a board it could not seed measures nothing.
export function seedMembers() {
  const batch = 100;
  for (let start = 0; start < MEMBERS; start += batch) {
    const requests = [];
    for (let i = start; i < Math.min(start + batch, MEMBERS); i++) {
      requests.push({
        method: 'POST',
        url: `${BASE_URL}/v1/boards/${BOARD}/scores`,
        body: JSON.stringify({ member: memberId(i), score: (i * 7919) % 100000, op: 'set' }),
        params: { headers: JSON_HEADERS, tags: { name: 'seed' } },
      });
    }
    for (const r of http.batch(requests)) {
      if (r.status !== 200) {
        throw new Error(`seeding failed: ${r.status} ${r.body}`);
      }
    }
  }
  return { members: MEMBERS };
}

// Writes the JSON summary to SUMMARY (default target/k6/<name>.json; k6
// does not create folders, so `mkdir -p target/k6` first) and the key
// figures to stdout.
export function summary(name, data) {
  const path = __ENV.SUMMARY || `target/k6/${name}.json`;
  const out = {};
  out[path] = JSON.stringify(data, null, 2);
  out.stdout = keyFigures(name, data) + `${name}: summary written to ${path}\n`;
  return out;
}

// Seconds in a k6 duration such as 10s, 1m30s or 500ms.
function seconds(duration) {
  const units = { ms: 0.001, s: 1, m: 60, h: 3600 };
  let total = 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let part = re.exec(duration);
  while (part !== null) {
    total += parseFloat(part[1]) * units[part[2]];
    part = re.exec(duration);
  }
  return total || 1;
}

// The figures a benchmark table needs: the scenario's requests and rate
// (setup's seeding excluded), failures, and latency per request kind.
function keyFigures(name, data) {
  const m = data.metrics;
  const value = (metric, field) => (m[metric] ? m[metric].values[field] : 0);
  const iterations = value('iterations', 'count');
  const lines = [
    `${name}: ${iterations} requests in ${DURATION} = ${(iterations / seconds(DURATION)).toFixed(1)}/s ` +
      `(target ${RATE}/s), ${value('dropped_iterations', 'count')} dropped iterations`,
    `${name}: ${value('http_req_failed', 'passes')} failed of ${value('http_reqs', 'count')} ` +
      `HTTP requests (setup included)`,
  ];
  const ms = (v) => (v === undefined ? '-' : `${v.toFixed(2)}ms`);
  const byLabel = Object.entries(m).sort(([a], [b]) =>
    (a.includes('{scenario:') ? '' : a).localeCompare(b.includes('{scenario:') ? '' : b));
  for (const [metric, body] of byLabel) {
    const kind = /^http_req_duration\{(name|scenario):(.+)\}$/.exec(metric);
    if (kind) {
      const v = body.values;
      const label = kind[1] === 'scenario' ? 'all' : kind[2];
      lines.push(
        `${name}: ${label} p50 ${ms(v.med)} p95 ${ms(v['p(95)'])} p99 ${ms(v['p(99)'])} max ${ms(v.max)}`,
      );
    }
  }
  for (const [metric, body] of Object.entries(m)) {
    if (body.type === 'rate' && metric !== 'http_req_failed') {
      lines.push(`${name}: ${metric} ${(body.values.rate * 100).toFixed(1)}%`);
    }
  }
  for (const [metric, body] of Object.entries(m)) {
    for (const [rule, result] of Object.entries(body.thresholds || {})) {
      lines.push(`${name}: threshold ${metric} ${rule}: ${result.ok ? 'passed' : 'FAILED'}`);
    }
  }
  return lines.join('\n') + '\n';
}
