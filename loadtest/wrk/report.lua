-- report.lua: wrk's done() hook, printing the run as one JSON line that
-- `standings-loadtest bench` parses (prefix WRK_JSON). The bench appends it
-- to each scenario script; to run a scenario by hand:
--   cat loadtest/wrk/rank.lua loadtest/wrk/report.lua > /tmp/rank.lua
--   wrk -t2 -c32 -d10s -s /tmp/rank.lua http://127.0.0.1:8080 -- 1000000 global
-- Latencies are microseconds, as wrk keeps them.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%.0f,"duration_us":%.0f,"bytes":%.0f,' ..
    '"errors":{"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f},' ..
    '"latency_us":{"p50":%.0f,"p90":%.0f,"p99":%.0f,"p999":%.0f,"max":%.0f,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
  -- A scenario that tallies answers itself (like.lua) prints its own line.
  if report_extra then report_extra() end
end
