#!lua
-- What follows from the event stream in one actor's or owner's shard
-- (scripts.rs documents KEYS and ARGV): per op, once per (event id,
-- side) by its dedup record, the actor's list or the owner's total.
local ttl, keep = ARGV[1], tonumber(ARGV[2])
local out = {}
for n = 1, #KEYS / 2 do
  local dedup, key = KEYS[2 * n - 1], KEYS[2 * n]
  local a = 4 * n - 1
  local side, delta, target, at = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3]
  if redis.call('SET', dedup, '1', 'NX', 'PX', ttl) then
    if side == 'a' then
      if delta > 0 then
        redis.call('ZADD', key, at, target)
        -- The newest `keep` stay (ties: the greater target, as
        -- ZRANGE REV orders them).
        redis.call('ZREMRANGEBYRANK', key, 0, -(keep + 1))
      else
        redis.call('ZREM', key, target)
      end
    elseif redis.call('INCRBY', key, delta) <= 0 then
      -- Never below 0; 0 is no key.
      redis.call('DEL', key)
    end
    out[n] = 1
  else
    out[n] = 0
  end
end
return out
