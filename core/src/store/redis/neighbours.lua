-- Follows place.lua (scripts.rs prepends it and the shebang).
local key, a, m = KEYS[1], ARGV[1], ARGV[2]
local n_down = tonumber(ARGV[3])
local n_up = tonumber(ARGV[4] or ARGV[3])
local below, above = place(key, a, m)
local card = redis.call('ZCARD', key)
local down, up = {}, {}
if n_down > 0 and below > 0 then
  down = redis.call('ZRANGE', key, math.max(0, below - n_down), below - 1, 'WITHSCORES')
end
if n_up > 0 and above < card then
  up = redis.call('ZRANGE', key, above, above + n_up - 1, 'WITHSCORES')
end
return {below, above, card, down, up}
