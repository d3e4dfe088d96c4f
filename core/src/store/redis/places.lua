-- Follows place.lua (scripts.rs prepends it and the shebang, and
-- documents KEYS and ARGV): for each sorted set, its ZCARD, then per
-- anchor how many entries sort after it and how many before it, the
-- anchor itself in neither.
local n = tonumber(ARGV[1])
local out, at = {}, 0
local function count(key)
  local card = redis.call('ZCARD', key)
  at = at + 1
  out[at] = card
  for i = 1, n do
    local below, above = place(key, ARGV[2 * i], ARGV[2 * i + 1])
    out[at + 1] = card - above
    out[at + 2] = below
    at = at + 2
  end
end
count(KEYS[1])
for j = 2 * n + 2, #ARGV do count(ARGV[j]) end
return out
