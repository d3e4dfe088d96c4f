#!lua
-- The next entries of one shard's event stream for one consumer of the
-- group (scripts.rs documents KEYS and ARGV): its own unacknowledged ones
-- first (a step that failed before XACK), then entries another consumer
-- left unacknowledged for longer than the claim time (it died), and new
-- ones only when no consumer holds any. Taking new entries while another
-- consumer still works on older ones could apply an unlike on the actor's
-- list before the like it follows; one holder at a time keeps each
-- stream's entries applied in stream order.
--
-- The usual poll finds nothing pending, so it asks XPENDING first and goes
-- straight to new entries: two commands. The group is made only when
-- XPENDING says it is missing.
local key, group, consumer, count, idle = KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local function entries(reply)
  if not reply or not reply[1] then return {} end
  return reply[1][2]
end
local pending = redis.pcall('XPENDING', key, group)
if pending.err then
  if redis.call('EXISTS', key) == 0 then return {} end
  local made = redis.pcall('XGROUP', 'CREATE', key, group, '0')
  if type(made) == 'table' and made.err and not string.find(made.err, 'BUSYGROUP', 1, true) then
    return redis.error_reply(made.err)
  end
  pending = {0}
end
if tonumber(pending[1]) > 0 then
  local holders = pending[4] or {}
  for _, holder in ipairs(holders) do
    if holder[1] == consumer then
      local own = entries(redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count,
        'STREAMS', key, '0'))
      if #own > 0 then return own end
      break
    end
  end
  -- Another consumer holds entries: only those idle past the claim time.
  return redis.call('XAUTOCLAIM', key, group, consumer, idle, '0-0', 'COUNT', count)[2]
end
return entries(redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count,
  'STREAMS', key, '>'))
