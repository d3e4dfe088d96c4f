-- Behaviour events of one likes shard, in order: follows periods.lua and
-- move.lua (scripts.rs documents KEYS and ARGV). Each event is one step:
-- dedup record, cooldown, the like state machine (events::transition),
-- the target's counts, every target-fed board moved in every period and
-- blend, and the event appended to the shard's stream for what follows
-- in other slots; or, when refused, nothing at all.
local ttl, cooldown = ARGV[1], tonumber(ARGV[2])
local streamlen, auditlen, at_gw = ARGV[3], ARGV[4], ARGV[5]
local nb, ne = tonumber(ARGV[6]), tonumber(ARGV[7])

-- The boards: every one weighs the event; those fed by target are opened
-- here (periods picked, blends resolved) before any event writes, so a
-- clock skew or a bad blend part refuses the whole call with nothing
-- written.
local boards, i, k = {}, 8, 2
for n = 1, nb do
  local d = {feed = ARGV[i], name = ARGV[i + 1], wl = tonumber(ARGV[i + 2]),
    wd = tonumber(ARGV[i + 3])}
  i = i + 4
  if d.feed == 'target' then
    local nkinds, nblends = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
    local b, after = open_board(tag_before(KEYS[k], ':a'), k + 1, i + 4, nkinds, nblends,
      ARGV[i], tonumber(ARGV[i + 1]))
    if not b then return after end
    d.board, d.audit = b, KEYS[k]
    k = k + 1 + 4 * nblends
    i = after
  end
  boards[n] = d
end

-- events::transition: from a state code and a like action, the new state
-- and the moves of likes and dislikes; nil for a pair that changes
-- nothing. A chain of compares rather than a table: the script's top level
-- runs on every call, and a table of tables would be built each time.
local function transition(from, kind)
  if from == 'n' then
    if kind == 'like' then return 'l', 1, 0 elseif kind == 'dislike' then return 'd', 0, 1 end
  elseif from == 'l' then
    if kind == 'unlike' then return 'n', -1, 0 elseif kind == 'dislike' then return 'd', -1, 1 end
  elseif from == 'd' then
    if kind == 'like' then return 'l', 1, -1 elseif kind == 'undislike' then return 'n', 0, -1 end
  end
  return nil
end
local function is_like(kind)
  return kind == 'like' or kind == 'unlike' or kind == 'dislike' or kind == 'undislike'
end
-- The `at` of every event of this call (the actor's list orders by it).
local now = fmt(now_ms())

-- What a dedup record `<digest> <state>` answers for an event id seen
-- before: the same event again, or another event under its id.
local function seen_before(seen, e)
  local digest, state = string.match(seen, '^(%S+) (%S+)$')
  if digest ~= e.digest then return 'conflict', '' end
  return 'repeat', state or '-'
end

-- A refusal, unless the event id was seen before: a repeat of an applied
-- event answers as a repeat even while its cooldown runs.
local function refuse(e, why)
  local seen = redis.call('GET', e.kd)
  if seen then return seen_before(seen, e) end
  return why, ''
end

-- One event: answers its status and state code (`n`, `l`, `d`, or `-` for
-- a counted type; `` when refused). Everything is read and planned first;
-- the dedup record is then set with `SET NX GET`, which in one call both
-- finds an id seen before (nothing else written) and records a new one.
local function apply(e)
  local like = is_like(e.kind)
  local to, dl, dd = '-', 0, 0
  if like then
    if cooldown > 0 and redis.call('EXISTS', e.kc) == 1 then return refuse(e, 'cooldown') end
    local from = redis.call('GET', e.ks) or 'n'
    local t, l, d = transition(from, e.kind)
    if t then to, dl, dd = t, l, d else to = from end
  end
  local moved = (not like) or dl ~= 0 or dd ~= 0

  -- Every board's delta, and every target-fed move planned (range
  -- checked) before anything is written.
  local plans, follow = {}, {}
  if moved then
    for n, d in ipairs(boards) do
      local delta
      if like then
        delta = dl * d.wl + dd * d.wd
      else
        delta = tonumber(ARGV[e.weights + n - 1])
      end
      if delta ~= 0 then
        if d.board then
          -- An incr can only be refused for its range.
          local scores, olds, names = plan_move(d.board, e.target, 'incr', delta)
          if not scores then return refuse(e, 'range') end
          plans[#plans + 1] = {d = d, scores = scores, olds = olds, names = names, delta = delta}
        elseif d.feed == 'actor' or (d.feed == 'owner' and e.owner ~= '') then
          follow[#follow + 1] = 'b:' .. d.name
          follow[#follow + 1] = fmt(delta)
        end
      end
    end
  end

  local seen = redis.call('SET', e.kd, e.digest .. ' ' .. to, 'PX', ttl, 'NX', 'GET')
  if seen then return seen_before(seen, e) end
  if like and cooldown > 0 then redis.call('SET', e.kc, '1', 'PX', cooldown) end
  if dl ~= 0 or dd ~= 0 then
    if to == 'n' then redis.call('DEL', e.ks) else redis.call('SET', e.ks, to) end
    -- Counts never go negative, and a field at 0 is dropped (an empty
    -- hash is no key at all).
    if dl ~= 0 and redis.call('HINCRBY', e.kl, 'l', dl) <= 0 then
      redis.call('HDEL', e.kl, 'l')
    end
    if dd ~= 0 and redis.call('HINCRBY', e.kl, 'd', dd) <= 0 then
      redis.call('HDEL', e.kl, 'd')
    end
  end
  for _, p in ipairs(plans) do
    local first, _, ix = commit_move(p.d.board, e.target, p.scores, p.olds, p.names)
    redis.call('XADD', p.d.audit, 'MAXLEN', '~', auditlen, '*', 'member', e.target, 'op', 'incr',
      'value', fmt(p.delta), 'score', first, 'request_id', 'event ' .. e.id, 'at_ms', at_gw,
      'ix', ix)
  end
  if dl ~= 0 or #follow > 0 then
    local x = {'XADD', KEYS[1], 'MAXLEN', '~', streamlen, '*', 'id', e.id, 'a', e.actor,
      't', e.target, 'l', tostring(dl), 'at', now}
    if e.owner ~= '' then
      x[#x + 1] = 'o'
      x[#x + 1] = e.owner
    end
    for j = 1, #follow do x[#x + 1] = follow[j] end
    redis.call(unpack(x))
  end
  if moved then return 'applied', to end
  return 'noop', to
end

local out = {}
for n = 1, ne do
  local e = {id = ARGV[i], digest = ARGV[i + 1], kind = ARGV[i + 2], actor = ARGV[i + 3],
    target = ARGV[i + 4], owner = ARGV[i + 5],
    kd = KEYS[k], kc = KEYS[k + 1], ks = KEYS[k + 2], kl = KEYS[k + 3]}
  i = i + 6
  if not is_like(e.kind) then
    e.weights = i
    i = i + nb
  end
  k = k + 4
  out[2 * n - 1], out[2 * n] = apply(e)
end
return out
