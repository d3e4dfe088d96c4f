-- The shared head of the neighbours and places scripts (scripts.rs
-- prepends it after their shebang): where an anchor (score `a`, name `m`)
-- sits in one sorted set. Defines locals only.

-- Byte order of two names: Lua's `<` on strings follows the server's
-- locale (`strcoll`), not Redis's byte order.
local function less(x, y)
  local lx, ly = #x, #y
  for i = 1, math.min(lx, ly) do
    local bx, by = string.byte(x, i), string.byte(y, i)
    if bx ~= by then return bx < by end
  end
  return lx < ly
end

-- The anchor's ascending positions in `key`: `[0, below)` come before it
-- and `[above, ZCARD)` after it (`above = below + 1` when the anchor itself
-- is in the set with that score). Its ties are placed by a binary search
-- over the tied index range.
local function place(key, a, m)
  local lo = redis.call('ZCOUNT', key, '-inf', '(' .. a)
  local hi = redis.call('ZCOUNT', key, '-inf', a)
  -- No entry holds the anchor's score here: nothing to search, and the
  -- anchor itself is not here either.
  if lo == hi then return lo, lo end
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local at = redis.call('ZRANGE', key, mid, mid)[1]
    if less(at, m) then lo = mid + 1 else hi = mid end
  end
  local own = redis.call('ZSCORE', key, m)
  if own and tonumber(own) == tonumber(a) then return lo, lo + 1 end
  return lo, lo
end
