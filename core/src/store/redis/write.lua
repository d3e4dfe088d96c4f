#!lua
local MAX = 9007199254740992
local function fmt(x) return string.format('%.17g', x) end
if KEYS[4] then
  local seen = redis.call('GET', KEYS[4])
  if seen then
    local gap = string.find(seen, ' ', 1, true)
    if not gap then return {'repeat', seen} end
    if string.sub(seen, 1, gap - 1) ~= ARGV[10] then return {'conflict'} end
    return {'repeat', string.sub(seen, gap + 1)}
  end
end
local member, op, value = ARGV[1], ARGV[2], tonumber(ARGV[3])
local old = redis.call('ZSCORE', KEYS[1], member)
if old then old = tonumber(old) end
local new
if op == 'incr' then
  local a = old or 0
  local s = a + value
  local bb = s - a
  local e = (a - (s - bb)) + (value - bb)
  local mag = math.abs(s)
  if mag > MAX or (mag == MAX and e ~= 0 and ((e > 0) == (s > 0))) then
    return {'range'}
  end
  new = s
elseif op == 'set' then
  new = value
elseif op == 'best' then
  local better
  if ARGV[4] == 'asc' then better = old and value < old else better = old and value > old end
  if old and not better then new = old else new = value end
else
  return redis.error_reply('ERR unknown op ' .. tostring(op))
end
if new ~= new or math.abs(new) > MAX then return {'range'} end
new = new + 0
local score = fmt(new)
redis.call('ZADD', KEYS[1], score, member)
if KEYS[4] then redis.call('SET', KEYS[4], ARGV[10] .. ' ' .. score, 'PX', ARGV[5], 'NX') end
redis.call('INCR', KEYS[2])
if KEYS[4] then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[9], '*', 'member', member, 'op', op,
    'value', ARGV[3], 'score', score, 'idem', ARGV[8], 'request_id', ARGV[6], 'at_ms', ARGV[7])
else
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[9], '*', 'member', member, 'op', op,
    'value', ARGV[3], 'score', score, 'request_id', ARGV[6], 'at_ms', ARGV[7])
end
return {'applied', score}
