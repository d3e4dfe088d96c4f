#!lua flags=no-writes
-- A shard's best entries and their members' metadata in one step (see
-- scripts.rs): KEYS[1] the period's sorted set, KEYS[2] the shard's meta
-- hash; ARGV[1] the last index, ARGV[2] `rev` for a desc board, ARGV[3]
-- the board's ties (`first_achiever`: each name is 16 digits of tie, then
-- the member, whose meta is looked up).
local got
if ARGV[2] == 'rev' then
  got = redis.call('ZRANGE', KEYS[1], 0, ARGV[1], 'REV', 'WITHSCORES')
else
  got = redis.call('ZRANGE', KEYS[1], 0, ARGV[1], 'WITHSCORES')
end
local metas = {}
if #got == 0 or redis.call('EXISTS', KEYS[2]) == 0 then return {got, metas} end
-- HMGET in chunks: unpack of many thousands of values overflows Lua's stack.
local chunk = {}
local function flush()
  if #chunk == 0 then return end
  local part = redis.call('HMGET', KEYS[2], unpack(chunk))
  for i = 1, #chunk do metas[#metas + 1] = part[i] end
  chunk = {}
end
local from = 1
if ARGV[3] == 'first_achiever' then from = 17 end
for i = 1, #got, 2 do
  chunk[#chunk + 1] = string.sub(got[i], from)
  if #chunk == 500 then flush() end
end
flush()
return {got, metas}
