-- Blend upkeep: follows periods.lua (scripts.rs documents KEYS and ARGV).
local mode, nkinds, nblends = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
-- The shard's period sets: KEYS[1] is a blend's `TAG:z:NAME` (blend
-- names hold no `:`).
local zpre = string.match(KEYS[1], '^(.*:z:)[^:]*$')
local periods, bykind, i = pick_periods(4, nkinds)
if not periods then return {'skew', bykind, fmt(i)} end

if mode == 'set' then
  -- New parts for the one blend in KEYS, rebuilt whatever it was built from.
  local text = ARGV[i]
  local parts, built = resolve(text, bykind)
  if not parts then return {'badpart', KEYS[1], built} end
  redis.call('SET', KEYS[3], text)
  rebuild(zpre, KEYS[1], KEYS[2], KEYS[4], parts, built)
  return {'rebuilt', '1'}
end

-- maintain: every blend whose parts resolve to other periods than its set
-- was built from. All resolved before anything is rebuilt.
local names = {}
for b = 1, nblends do
  names[2 * b - 1] = KEYS[4 * b - 1]
  names[2 * b] = KEYS[4 * b]
end
local state = redis.call('MGET', unpack(names))
local stale = {}
for b = 1, nblends do
  local parts, built = resolve_or_config(state[2 * b - 1], ARGV[i + b - 1], bykind)
  if not parts then return {'badpart', KEYS[4 * b - 3], built} end
  if built ~= state[2 * b] then stale[#stale + 1] = {b = b, parts = parts, built = built} end
end
for _, s in ipairs(stale) do
  local base = 4 * s.b
  rebuild(zpre, KEYS[base - 3], KEYS[base - 2], KEYS[base], s.parts, s.built)
end
return {'rebuilt', tostring(#stale)}
