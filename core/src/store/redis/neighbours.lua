#!lua flags=no-writes
local key, a, m = KEYS[1], ARGV[1], ARGV[2]
local n_down = tonumber(ARGV[3])
local n_up = tonumber(ARGV[4] or ARGV[3])
local function less(x, y)
  local lx, ly = #x, #y
  for i = 1, math.min(lx, ly) do
    local bx, by = string.byte(x, i), string.byte(y, i)
    if bx ~= by then return bx < by end
  end
  return lx < ly
end
local lo = redis.call('ZCOUNT', key, '-inf', '(' .. a)
local hi = redis.call('ZCOUNT', key, '-inf', a)
while lo < hi do
  local mid = math.floor((lo + hi) / 2)
  local at = redis.call('ZRANGE', key, mid, mid)[1]
  if less(at, m) then lo = mid + 1 else hi = mid end
end
local below, above = lo, lo
local own = redis.call('ZSCORE', key, m)
if own and tonumber(own) == tonumber(a) then above = below + 1 end
local card = redis.call('ZCARD', key)
local down, up = {}, {}
if n_down > 0 and below > 0 then
  down = redis.call('ZRANGE', key, math.max(0, below - n_down), below - 1, 'WITHSCORES')
end
if n_up > 0 and above < card then
  up = redis.call('ZRANGE', key, above, above + n_up - 1, 'WITHSCORES')
end
return {below, above, card, down, up}
