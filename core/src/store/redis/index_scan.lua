#!lua flags=no-writes
-- The rank index's scan of one shard (see scripts.rs): the stream
-- position and, in the same atomic step, how many members hold each score
-- in each period asked, so that the stream's records after that position
-- are exactly what changed since.
-- KEYS[1] the shard's audit stream; ARGV[1] 'runs' (counts per score) or
-- 'members' (every member and score, and the metas); ARGV[2] the shard's
-- meta hash; ARGV[3..] the sorted sets of the periods.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local pos, added = '0-0', 0
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last > 0 then
  pos = last[1][1]
  added = false
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'entries-added' then added = info[i + 1] end
  end
  -- Redis before 7.0 does not count what a stream was given.
  if not added then return {'old'} end
end
local out = {'ok', tostring(now), pos, added}
local members = ARGV[1] == 'members'
for i = 3, #ARGV do
  local flat = redis.call('ZRANGE', ARGV[i], 0, -1, 'WITHSCORES')
  if members then
    out[#out + 1] = flat
  else
    -- Scores come in order, so equal ones are adjacent: run lengths.
    local runs, score, count = {}, nil, 0
    for j = 2, #flat, 2 do
      if flat[j] == score then
        count = count + 1
      else
        if score then runs[#runs + 1] = score; runs[#runs + 1] = count end
        score, count = flat[j], 1
      end
    end
    if score then runs[#runs + 1] = score; runs[#runs + 1] = count end
    out[#out + 1] = runs
  end
end
if members then
  out[#out + 1] = redis.call('HGETALL', ARGV[2])
else
  out[#out + 1] = {}
end
return out
