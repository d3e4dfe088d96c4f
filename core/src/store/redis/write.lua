-- The write: follows periods.lua (scripts.rs documents KEYS and ARGV).
local member, op, digest = ARGV[1], ARGV[2], ARGV[10]
local nkinds, nblends = tonumber(ARGV[12]), tonumber(ARGV[13])
local idem = KEYS[2 + 4 * nblends]

if idem then
  local seen = redis.call('GET', idem)
  if seen then
    -- `digest score[ id=score...]`; a bare score is a record of a release
    -- before digests and counts as the same write.
    local rest = seen
    local gap = string.find(seen, ' ', 1, true)
    if gap then
      if string.sub(seen, 1, gap - 1) ~= digest then return {'conflict'} end
      rest = string.sub(seen, gap + 1)
    end
    gap = string.find(rest, ' ', 1, true)
    if gap then
      local reply = {'repeat', string.sub(rest, 1, gap - 1)}
      for id, s in string.gmatch(string.sub(rest, gap + 1), '([^ =]+)=([^ ]+)') do
        reply[#reply + 1] = id
        reply[#reply + 1] = s
      end
      return reply
    end
    -- A record without ids: the first period by the store's clock.
    local periods, bad, now = pick_periods(14, nkinds)
    if not periods then return {'skew', bad, fmt(now)} end
    if periods[1] then return {'repeat', rest, periods[1].id, rest} end
    return {'repeat', rest}
  end
end

local periods, bykind, i = pick_periods(14, nkinds)
if not periods then return {'skew', bykind, fmt(i)} end

-- Every period's new score before anything is written: one out of range
-- writes none.
local value, asc = tonumber(ARGV[3]), ARGV[4] == 'asc'
for n = 1, nkinds do
  local p = periods[n]
  p.z = zpre .. p.id
  local old = false
  if op ~= 'set' then
    old = redis.call('ZSCORE', p.z, member)
    if old then old = tonumber(old) end
  end
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
    if asc then better = old and value < old else better = old and value > old end
    if old and not better then new = old else new = value end
  else
    return redis.error_reply('ERR unknown op ' .. tostring(op))
  end
  if new ~= new or math.abs(new) > MAX then return {'range'} end
  p.score = new + 0
end

-- Every blend's parts resolved before anything is written, too.
local blends = {}
if nblends > 0 then
  local names = {}
  for b = 1, nblends do
    names[2 * b - 1] = KEYS[4 * b]
    names[2 * b] = KEYS[4 * b + 1]
  end
  local state = redis.call('MGET', unpack(names))
  for b = 1, nblends do
    local parts, built = resolve_or_config(state[2 * b - 1], ARGV[i + b - 1], bykind)
    if not parts then return {'badpart', KEYS[4 * b - 2], built} end
    blends[b] = {parts = parts, built = built, was = state[2 * b]}
  end
end

local first = '0'
local reply = {'applied', first}
local record = {digest, first}
local retention = tonumber(ARGV[11])
for n = 1, nkinds do
  local p = periods[n]
  local score = fmt(p.score)
  redis.call('ZADD', p.z, score, member)
  local v = vpre .. p.id
  if redis.call('INCR', v) == 1 then
    -- The period's first write in this shard: index it (by when it
    -- expires) so a removal finds every period the member may be in.
    if p.ends and p.ends < math.huge then
      local at = fmt(p.ends + retention)
      redis.call('PEXPIREAT', p.z, at)
      redis.call('PEXPIREAT', v, at)
      redis.call('ZADD', tag .. ':periods', at, p.id)
    else
      redis.call('ZADD', tag .. ':periods', 'inf', p.id)
    end
  end
  reply[2 * n + 1] = p.id
  reply[2 * n + 2] = score
  record[n + 2] = p.id .. '=' .. score
end
if nkinds > 0 then
  first = reply[4]
  reply[2] = first
  record[2] = first
end

if nblends > 0 then
  -- The member's score in each part: just written for current periods,
  -- looked up once for previous ones.
  local known = {}
  for n = 1, nkinds do known[periods[n].id] = periods[n].score end
  for b = 1, nblends do
    local blend = blends[b]
    local z, v = KEYS[4 * b - 2], KEYS[4 * b - 1]
    if blend.built ~= blend.was then
      rebuild(z, v, KEYS[4 * b + 1], blend.parts, blend.built)
    end
    local moves = false
    for _, part in ipairs(blend.parts) do
      if part.cur then moves = true end
    end
    if moves then
      local sum = nil
      for _, part in ipairs(blend.parts) do
        local s = known[part.id]
        if s == nil then
          s = redis.call('ZSCORE', zpre .. part.id, member)
          s = s and tonumber(s)
          known[part.id] = s
        end
        if s then
          local product = part.w * s
          if sum then sum = sum + product else sum = product end
        end
      end
      if sum then
        if sum == 0 then sum = 0 end
        if sum > MAX then sum = MAX elseif sum < -MAX then sum = -MAX end
        redis.call('ZADD', z, fmt(sum), member)
      else
        redis.call('ZREM', z, member)
      end
      redis.call('INCR', v)
    end
  end
end

if idem then
  local kept = digest .. ' ' .. first
  if nkinds > 1 then kept = table.concat(record, ' ') end
  redis.call('SET', idem, kept, 'PX', ARGV[5], 'NX')
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[9], '*', 'member', member, 'op', op,
    'value', ARGV[3], 'score', first, 'idem', ARGV[8], 'request_id', ARGV[6], 'at_ms', ARGV[7])
else
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[9], '*', 'member', member, 'op', op,
    'value', ARGV[3], 'score', first, 'request_id', ARGV[6], 'at_ms', ARGV[7])
end
return reply
