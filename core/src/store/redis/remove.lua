#!lua
-- Removes a member from every period and blend of its shard (see
-- scripts.rs): the periods the shard's index holds (dropping those past
-- their expiry), the ids the gateway names (periods of data written before
-- the index), and the board's blends; and its meta.
-- KEYS[1] is the audit stream `TAG:a`; a tag is `{st:b:s}`, or
-- `{sl:t:s}:b` for a board fed by target events.
local tag = string.sub(KEYS[1], 1, -3)
local member, request_id, at_ms, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local idx = tag .. ':periods'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', idx, '-inf', '(' .. string.format('%.17g', now))
local ids, seen = {}, {}
local function add(id) if not seen[id] then seen[id] = true; ids[#ids + 1] = id end end
for _, id in ipairs(redis.call('ZRANGE', idx, 0, -1)) do add(id) end
for n = 5, #ARGV do add(ARGV[n]) end
local removed, ix = 0, {}
for _, id in ipairs(ids) do
  -- A first_achiever board's set is `:f:` and names the member by its tie
  -- (kept in `:t:`) and the member; both kinds are tried, so a board whose
  -- `ties` changed loses the member everywhere.
  local t = tag .. ':t:' .. id
  local tie = redis.call('HGET', t, member)
  if tie then redis.call('HDEL', t, member) end
  for _, at in ipairs({{tag .. ':z:' .. id, member}, {tag .. ':f:' .. id, tie and (tie .. member)}}) do
    local z, name = at[1], at[2]
    local old = name and redis.call('ZSCORE', z, name)
    if old then
      redis.call('ZREM', z, name)
      redis.call('INCR', tag .. ':v:' .. id)
      removed = removed + 1
      -- For the rank index: `id old -` per period left (see move.lua).
      ix[#ix + 1] = id .. ' ' .. old .. ' -'
    end
  end
end
-- The member's meta on the board goes with it.
if redis.call('HDEL', tag .. ':m', member) == 1 then removed = removed + 1 end
if removed > 0 then
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', 'member', member, 'op', 'remove',
    'value', '0', 'score', '0', 'request_id', request_id, 'at_ms', at_ms,
    'ix', table.concat(ix, ' '))
end
return removed
