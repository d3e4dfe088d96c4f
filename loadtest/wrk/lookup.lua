-- lookup.lua: POST /v1/boards/BOARD/members:lookup with SIZE random seeded
-- members user:N, N in 0..MEMBERS-1 (repeats possible, as a feed page's
-- would be rare), so each request ranks SIZE members exactly. Arguments
-- after `--`: MEMBERS [BOARD] [SIZE].
local threads = 0

function setup(thread)
  thread:set("thread_id", threads)
  threads = threads + 1
end

function init(args)
  members = tonumber(args[1]) or 1000
  board = args[2] or "global"
  size = tonumber(args[3]) or 20
  path = "/v1/boards/" .. board .. "/members:lookup"
  headers = { ["Content-Type"] = "application/json" }
  math.randomseed(os.time() * 7919 + (thread_id or 0))
end

function request()
  local names = {}
  for i = 1, size do
    names[i] = '"user:' .. math.random(0, members - 1) .. '"'
  end
  local body = '{"members":[' .. table.concat(names, ",") .. ']}'
  return wrk.format("POST", path, headers, body)
end
