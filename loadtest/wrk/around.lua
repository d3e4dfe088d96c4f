-- around.lua: GET /v1/boards/BOARD/members/user:N/around?radius=5 for a
-- random seeded N in 0..MEMBERS-1: the exact window of 11 around a
-- member. Arguments after `--`: MEMBERS [BOARD].
local threads = 0

function setup(thread)
  thread:set("thread_id", threads)
  threads = threads + 1
end

function init(args)
  members = tonumber(args[1]) or 1000
  board = args[2] or "global"
  math.randomseed(os.time() * 7919 + (thread_id or 0))
end

function request()
  local n = math.random(0, members - 1)
  return wrk.format("GET", "/v1/boards/" .. board .. "/members/user:" .. n .. "/around?radius=5")
end
