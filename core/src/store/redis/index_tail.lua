#!lua flags=no-writes
-- The rank index's next records of one shard (see scripts.rs): up to
-- ARGV[3] records after ARGV[1], each as its id, member, op, `ix` text
-- ('?' for a record without one) and meta ('' for none), or 'gap' when
-- records after ARGV[1] were trimmed
-- before they were read. ARGV[2] is how many records the stream had been
-- given up to ARGV[1] (`entries-added`): trimming removes the oldest, so
-- nothing unread is gone while the stream has removed at most that many.
-- KEYS[1] the shard's audit stream.
local got = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[3])
-- Trimming runs on XADD and keeps the newest entry: no record after the
-- position means none was added, so none can be missing.
if #got == 0 then return {'ok'} end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local len, added = nil, nil
for i = 1, #info, 2 do
  if info[i] == 'length' then len = info[i + 1] end
  if info[i] == 'entries-added' then added = info[i + 1] end
end
if not added then return {'old'} end
local seen = tonumber(ARGV[2])
if added < seen or added - len > seen then return {'gap'} end
local out = {'ok'}
for _, e in ipairs(got) do
  local ix, member, op, meta = '?', '', '', ''
  local f = e[2]
  for j = 1, #f, 2 do
    local name = f[j]
    if name == 'ix' then ix = f[j + 1]
    elseif name == 'member' then member = f[j + 1]
    elseif name == 'op' then op = f[j + 1]
    elseif name == 'meta' then meta = f[j + 1] end
  end
  out[#out + 1] = e[1]
  out[#out + 1] = member
  out[#out + 1] = op
  out[#out + 1] = ix
  out[#out + 1] = meta
end
return out
