-- like.lua: POST /v1/events, one like per request: a unique event id (RUN,
-- the wrk thread and a per-thread counter), actor u:M and target v:N drawn
-- at random among ACTORS and TARGETS, so nearly every like is a new one
-- and applies. The same work per like as the raw baseline of
-- `standings-loadtest bench-likes` (SADD, HINCRBY, ZINCRBY).
-- Arguments after `--`: ACTORS TARGETS RUN.
--
-- Every answer is tallied (wrk itself counts only status >= 400 as an
-- error, so a 202 `queued` would pass unseen): the WRK_LIKES line that
-- report_extra() prints says how many answered 200 and how many of those
-- said "applied":true.
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

function init(args)
  actors = tonumber(args[1]) or 1000000
  targets = tonumber(args[2]) or 100000
  run = args[3] or "like"
  headers = { ["Content-Type"] = "application/json" }
  math.randomseed(os.time() * 7919 + (thread_id or 0))
  sent = 0
  answered = 0
  ok = 0
  applied = 0
end

function request()
  sent = sent + 1
  local body = string.format(
    '{"id":"%s-%d-%d","type":"like","actor":"u:%d","target":"v:%d"}',
    run, thread_id or 0, sent, math.random(0, actors - 1), math.random(0, targets - 1))
  return wrk.format("POST", "/v1/events", headers, body)
end

function response(status, headers, body)
  answered = answered + 1
  if status == 200 then
    ok = ok + 1
    if string.find(body, '"applied":true', 1, true) then
      applied = applied + 1
    end
  end
end

function report_extra()
  local a, o, n = 0, 0, 0
  for _, t in ipairs(threads) do
    n = n + (t:get("answered") or 0)
    o = o + (t:get("ok") or 0)
    a = a + (t:get("applied") or 0)
  end
  io.write(string.format('WRK_LIKES {"answered":%.0f,"ok":%.0f,"applied":%.0f}\n', n, o, a))
end
