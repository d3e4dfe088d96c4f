-- write.lua: POST /v1/boards/BOARD/scores, an `incr` by 1 of a random
-- seeded member user:N, N in 0..MEMBERS-1: the same operation as the raw
-- ZINCRBY baseline. Arguments after `--`: MEMBERS [BOARD].
local threads = 0

function setup(thread)
  thread:set("thread_id", threads)
  threads = threads + 1
end

function init(args)
  members = tonumber(args[1]) or 1000
  board = args[2] or "global"
  path = "/v1/boards/" .. board .. "/scores"
  headers = { ["Content-Type"] = "application/json" }
  math.randomseed(os.time() * 7919 + (thread_id or 0))
end

function request()
  local n = math.random(0, members - 1)
  local body = '{"member":"user:' .. n .. '","score":1,"op":"incr"}'
  return wrk.format("POST", path, headers, body)
end
