-- The write: follows periods.lua and move.lua (scripts.rs documents KEYS
-- and ARGV).
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

-- Periods picked, blends resolved and every period's new score computed
-- before anything is written: a refusal writes nothing.
local b, after = open_board(tag_before(KEYS[1], ':a'), 2, 14, nkinds, nblends, ARGV[4],
  tonumber(ARGV[11]))
if not b then return after end
local scores, olds, names = plan_move(b, member, op, tonumber(ARGV[3]))
if not scores then return olds end
local first, moved, ix = commit_move(b, member, scores, olds, names)
-- The meta (always the last ARGV; empty: keep the member's) in the same
-- step as the score.
local meta = ARGV[#ARGV]
if meta ~= '' then redis.call('HSET', tag_before(KEYS[1], ':a') .. ':m', member, meta) end

local reply = {'applied', first}
local record = {digest, first}
for n = 1, nkinds do
  reply[2 * n + 1] = moved[2 * n - 1]
  reply[2 * n + 2] = moved[2 * n]
  record[n + 2] = moved[2 * n - 1] .. '=' .. moved[2 * n]
end

local audit = {'member', member, 'op', op, 'value', ARGV[3], 'score', first,
  'request_id', ARGV[6], 'at_ms', ARGV[7], 'ix', ix}
if idem then
  local kept = digest .. ' ' .. first
  if nkinds > 1 then kept = table.concat(record, ' ') end
  redis.call('SET', idem, kept, 'PX', ARGV[5], 'NX')
  audit[#audit + 1] = 'idem'
  audit[#audit + 1] = ARGV[8]
end
-- The meta rides along when the write set one, so a rank index that
-- keeps members follows it (see ranks.rs).
if meta ~= '' then
  audit[#audit + 1] = 'meta'
  audit[#audit + 1] = meta
end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[9], '*', unpack(audit))
return reply
