// Static TOP20 through the CDN: GET {BASE_URL}/static/{BOARD}/top20.json at
// RATE per second, where BASE_URL is Varnish (config/varnish/standings.vcl)
// in front of the gateway. Besides latency and errors it records the share
// of cache hits from Varnish's X-Cache header (cdn_hit), which must be at
// least CDN_MIN_HIT_RATE (default 0.5): the file changes, and is purged, at
// most once per refresh, so nearly every read should be a hit.
//
//   k6 run -e BASE_URL=http://127.0.0.1:6081 -e RATE=500 loadtest/k6/cdn.js

import http from 'k6/http';
import { check } from 'k6';
import { Rate } from 'k6/metrics';
import { BASE_URL, BOARD, options as baseOptions, scenario, summary } from './lib.js';

const hits = new Rate('cdn_hit');
const minHitRate = parseFloat(__ENV.CDN_MIN_HIT_RATE || '0.5');

export const options = baseOptions({ cdn: scenario('cdn') }, ['cdn'], {
  cdn_hit: [`rate>=${minHitRate}`],
});

export function cdn() {
  const r = http.get(`${BASE_URL}/static/${BOARD}/top20.json`, { tags: { name: 'cdn' } });
  check(r, { 'cdn: 200 from Varnish': (res) => res.status === 200 && res.headers['X-Cache'] !== undefined });
  hits.add(r.headers['X-Cache'] === 'HIT');
}

export function handleSummary(data) {
  return summary('cdn', data);
}
