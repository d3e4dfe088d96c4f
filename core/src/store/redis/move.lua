-- One board's shard moved for one member: the body of a write, shared by
-- the write script and the events script (which moves several boards per
-- event and several events per call). Follows periods.lua; scripts.rs
-- prepends both. Defines locals only.

-- Opens a board's shard for moves: `tag` the shard's tag, the blends' keys
-- from KEYS[ki] on (4 each, in board order: `:z:NAME`, `:v:NAME`,
-- `:bp:NAME`, `:bs:NAME`), `nkinds` period descriptors from ARGV[ai] on
-- followed by the `nblends` blends' config parts texts; `order` is `desc`
-- or `asc`, followed by ` first_achiever` for a board whose equal scores
-- rank by who reached them first. Picks each kind's current period by the
-- store's clock and resolves every blend's parts, writing nothing.
-- Answers the board and the ARGV index after its arguments; or nil and
-- the script's refusal, `{'skew', kind, store ms}` or `{'badpart', blend
-- key, part}`.
local function open_board(tag, ki, ai, nkinds, nblends, order, retention)
  local periods, bykind, i = pick_periods(ai, nkinds)
  if not periods then return nil, {'skew', bykind, fmt(i)} end
  local fa = string.find(order, 'first_achiever', 1, true) ~= nil
  -- A first_achiever board's sets are `:f:`, not `:z:` (keyspace.rs): its
  -- members have other names.
  local zpre = tag .. ':z:'
  if fa then zpre = tag .. ':f:' end
  local b = {
    tag = tag, zpre = zpre, vpre = tag .. ':v:', periods = periods,
    asc = string.sub(order, 1, 3) == 'asc', retention = retention, blends = {},
    fa = fa,
  }
  for n = 1, nkinds do
    periods[n].z = b.zpre .. periods[n].id
    -- first_achiever: member -> its tie's 16 digits; its name in the set
    -- is those digits and the member (types::stored_name).
    periods[n].t = tag .. ':t:' .. periods[n].id
  end
  if b.fa then
    -- When this call's moves reach their scores, in microseconds: an
    -- earlier time is the better tie (types::Order::tie_at).
    local t = redis.call('TIME')
    local at = math.min(tonumber(t[1]) * 1000000 + tonumber(t[2]), MAX - 1)
    if b.asc then b.tie = string.format('%016.0f', at)
    else b.tie = string.format('%016.0f', MAX - 1 - at) end
  end
  if nblends > 0 then
    local names = {}
    for n = 1, nblends do
      names[2 * n - 1] = KEYS[ki + 4 * n - 2]
      names[2 * n] = KEYS[ki + 4 * n - 1]
    end
    local state = redis.call('MGET', unpack(names))
    for n = 1, nblends do
      local base = ki + 4 * (n - 1)
      local parts, built = resolve_or_config(state[2 * n - 1], ARGV[i + n - 1], bykind)
      if not parts then return nil, {'badpart', KEYS[base], built} end
      b.blends[n] = {
        z = KEYS[base], v = KEYS[base + 1], bs = KEYS[base + 3],
        parts = parts, built = built, was = state[2 * n],
      }
    end
  end
  return b, i + nblends
end

-- The member's new score in every period of `b` for `op` (`incr`, `set`,
-- `best` by the board's order) with `value`, all computed before anything
-- is written. Answers them in period order, the member's scores before
-- (the text Redis keeps, or false for none: the rank index reads both
-- from the audit record) and its names in the sets (the member, or on a
-- first_achiever board its tie and the member, false for none); or nil
-- and `{'range'}` when one would leave +-2^53 (incr uses the TwoSum test
-- of types::checked_add), or an error reply for an unknown op.
local function plan_move(b, member, op, value)
  local scores, olds, names = {}, {}, {}
  for n, p in ipairs(b.periods) do
    local name = member
    if b.fa then
      name = redis.call('HGET', p.t, member)
      if name then name = name .. member end
    end
    names[n] = name
    local old = name and redis.call('ZSCORE', p.z, name)
    olds[n] = old
    if old then old = tonumber(old) end
    local new
    if op == 'incr' then
      local a = old or 0
      local s = a + value
      local bb = s - a
      local e = (a - (s - bb)) + (value - bb)
      local mag = math.abs(s)
      if mag > MAX or (mag == MAX and e ~= 0 and ((e > 0) == (s > 0))) then
        return nil, {'range'}
      end
      new = s
    elseif op == 'set' then
      new = value
    elseif op == 'best' then
      local better
      if b.asc then better = old and value < old else better = old and value > old end
      if old and not better then new = old else new = value end
    else
      return nil, redis.error_reply('ERR unknown op ' .. tostring(op))
    end
    if new ~= new or math.abs(new) > MAX then return nil, {'range'} end
    scores[n] = new + 0
  end
  return scores, olds, names
end

-- Writes a planned move: per period `ZADD` and `INCR :v:P`, and when that
-- INCR answers 1 (the period's first write in the shard), or a member new
-- to the set finds it without an expiry (a removal emptied it),
-- `PEXPIREAT` of `:z:P` (`:f:P` and `:t:P` on a first_achiever board) and
-- `:v:P` at the period's end plus the retention and the period's entry in
-- the shard's index; then per blend a rebuild when its
-- parts resolve to other periods than its set was built from, and, when a
-- part is a current period, the member's blend score recomputed as
-- blend::weighted_sum does (`ZADD`, or `ZREM` when it has none) and
-- `INCR :v:NAME`. Answers the first period's score text ('0' for a board
-- without periods), `{id1, score1, id2, score2, ...}` in period order, and
-- the audit record's `ix` text, `id old new` per period with `-` for no
-- old score (what the gateway's rank index applies; see ranks.rs).
local function commit_move(b, member, scores, olds, names)
  local moved, ix = {}, {}
  for n, p in ipairs(b.periods) do
    local score = fmt(scores[n])
    ix[n] = p.id .. ' ' .. (olds[n] or '-') .. ' ' .. score
    local name = member
    if b.fa then
      name = names[n]
      -- A score reached now takes this call's tie; one that did not
      -- change keeps the tie of when it was first reached.
      if not (olds[n] and tonumber(olds[n]) == scores[n]) then
        if name then redis.call('ZREM', p.z, name) end
        name = b.tie .. member
        redis.call('HSET', p.t, member, b.tie)
      end
    end
    redis.call('ZADD', p.z, score, name)
    local v = b.vpre .. p.id
    local fresh = redis.call('INCR', v) == 1
    -- A removal that emptied the set deleted it (and its expiry) but kept
    -- the version: a member new to a set made again sets the expiry again.
    if not fresh and not olds[n] and p.ends and p.ends < math.huge then
      fresh = redis.call('PTTL', p.z) == -1
    end
    if fresh then
      -- The period's first write in this shard: index it (by when it
      -- expires) so a removal finds every period the member may be in.
      if p.ends and p.ends < math.huge then
        local at = fmt(p.ends + b.retention)
        redis.call('PEXPIREAT', p.z, at)
        redis.call('PEXPIREAT', v, at)
        if b.fa then redis.call('PEXPIREAT', p.t, at) end
        redis.call('ZADD', b.tag .. ':periods', at, p.id)
      else
        redis.call('ZADD', b.tag .. ':periods', 'inf', p.id)
      end
    end
    moved[2 * n - 1] = p.id
    moved[2 * n] = score
  end
  local first = moved[2] or '0'

  if #b.blends > 0 then
    -- The member's score in each part: just written for current periods,
    -- looked up once for previous ones.
    local known = {}
    for n, p in ipairs(b.periods) do known[p.id] = scores[n] end
    for _, blend in ipairs(b.blends) do
      if blend.built ~= blend.was then
        rebuild(b.zpre, blend.z, blend.v, blend.bs, blend.parts, blend.built)
        -- Later moves of this call find it up to date.
        blend.was = blend.built
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
            s = redis.call('ZSCORE', b.zpre .. part.id, member)
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
          redis.call('ZADD', blend.z, fmt(sum), member)
        else
          redis.call('ZREM', blend.z, member)
        end
        redis.call('INCR', blend.v)
      end
    end
  end
  return first, moved, table.concat(ix, ' ')
end
