#!lua
-- Shared head of the write, blend and events scripts (scripts.rs
-- prepends it, shebang included): the store's clock, the choice of each
-- kind's current period, and blend parts resolved and rebuilt. Defines
-- locals only; which shard a board's keys are in is the caller's (a
-- script may move several boards).
local MAX = 9007199254740992
local function fmt(x) return string.format('%.17g', x) end

-- The shard tag of a board's key: the key without its `suffix`. A tag is
-- `{st:b:s}` for most boards and `{sl:t:s}:b` for one fed by target events
-- (which shares its tenant's likes slot), so it is cut from a key of known
-- suffix rather than matched as the braces alone.
local function tag_before(key, suffix)
  return string.sub(key, 1, #key - #suffix)
end

-- The store's clock, ms since the Unix epoch.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Reads `count` period descriptors from ARGV[i] on and picks, per kind, the
-- period that holds the store's time. A descriptor is `all` alone, or 9
-- entries: kind, id of p-2, id of p-1, start of p-1, id of p, start of p,
-- id of p+1, start of p+1, end of p+1 (p the gateway's current period;
-- starts and ends in ms, `inf`/`-inf` for none). Answers the chosen periods
-- in board order, each `{id, prev, ends}` (`prev`: the id before it;
-- `ends`: nil for `all`), the same by kind text, and the index after the
-- descriptors; or nil, the kind whose window does not hold the store's
-- time (the gateway's clock is off by more than a period) and that time.
-- The clock is read once, and not at all for a board of `all` alone.
local function pick_periods(i, count)
  local periods, bykind, now = {}, {}, nil
  for n = 1, count do
    local kind, p = ARGV[i], nil
    if kind == 'all' then
      p = {id = 'all'}
      i = i + 1
    else
      now = now or now_ms()
      local b1, b2, b3 = tonumber(ARGV[i + 5]), tonumber(ARGV[i + 7]), tonumber(ARGV[i + 8])
      if now < tonumber(ARGV[i + 3]) or now >= b3 then return nil, kind, now end
      if now < b1 then
        p = {id = ARGV[i + 2], prev = ARGV[i + 1], ends = b1}
      elseif now < b2 then
        p = {id = ARGV[i + 4], prev = ARGV[i + 2], ends = b2}
      else
        p = {id = ARGV[i + 6], prev = ARGV[i + 4], ends = b3}
      end
      i = i + 9
    end
    periods[n] = p
    bykind[kind] = p
  end
  return periods, bykind, i
end

-- Resolves a blend's parts text (`period*weight` joined by `;`, as
-- blend::encode_parts writes it) against the chosen periods. Answers the
-- parts, each `{id, w (number), wtext, cur (not /previous)}`, and what the
-- set is built from (`id*weight` joined by `;`, blend::built_from); or nil
-- and the part that names a kind this board's write does not move.
local function resolve(text, bykind)
  local parts, built = {}, {}
  for period, w in string.gmatch(text, '([^;*]+)%*([^;]+)') do
    local kind, previous = period, false
    if string.sub(period, -9) == '/previous' then
      kind, previous = string.sub(period, 1, -10), true
    end
    local p, id = bykind[kind], nil
    if p then
      if previous then id = p.prev else id = p.id end
    end
    local weight = tonumber(w)
    if not id or not weight then return nil, period .. '*' .. w end
    local n = #parts + 1
    parts[n] = {id = id, w = weight, wtext = w, cur = not previous}
    built[n] = id .. '*' .. w
  end
  if #parts == 0 then return nil, text end
  return parts, table.concat(built, ';')
end

-- The parts a blend uses: those set at run time (`stored`, the blend's
-- `:bp:` key) when they resolve, else the board's config parts: weights
-- stored for a period kind the board no longer writes are ignored, so that
-- a config change cannot make every write fail.
local function resolve_or_config(stored, config, bykind)
  if stored then
    local parts, built = resolve(stored, bykind)
    if parts then return parts, built end
  end
  return resolve(config, bykind)
end

-- Rebuilds a blend's set from its parts' sets (`zpre` .. period id, the
-- shard's period set prefix) and records what it was built from. ZUNIONSTORE orders its inputs by size before adding, so more
-- than two parts are folded in pairs, left to right: each sum then adds in
-- part order exactly as blend::weighted_sum does (a sum of two is the same
-- whichever comes first). An empty union deletes the set.
local function rebuild(zpre, z, v, bs, parts, built)
  local p1, p2 = parts[1], parts[2]
  if not p2 then
    redis.call('ZUNIONSTORE', z, 1, zpre .. p1.id, 'WEIGHTS', p1.wtext)
  else
    redis.call('ZUNIONSTORE', z, 2, zpre .. p1.id, zpre .. p2.id, 'WEIGHTS', p1.wtext, p2.wtext)
    for j = 3, #parts do
      redis.call('ZUNIONSTORE', z, 2, z, zpre .. parts[j].id, 'WEIGHTS', 1, parts[j].wtext)
    end
  end
  -- Blend scores saturate at +-2^53, as blend::weighted_sum does.
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', z, '(' .. fmt(MAX), '+inf')) do
    redis.call('ZADD', z, fmt(MAX), m)
  end
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', z, '-inf', '(' .. fmt(-MAX))) do
    redis.call('ZADD', z, fmt(-MAX), m)
  end
  redis.call('SET', bs, built)
  redis.call('INCR', v)
end
