#!lua flags=no-writes
-- Entries of one shard's event stream the group has not applied yet
-- (scripts.rs documents KEYS and ARGV): the group's lag (entries not
-- delivered) plus its pending ones (delivered, not acknowledged); the
-- whole stream when the group was never created; 0 without a stream.
local key, group = KEYS[1], ARGV[1]
if redis.call('EXISTS', key) == 0 then return 0 end
for _, g in ipairs(redis.call('XINFO', 'GROUPS', key)) do
  local f = {}
  for n = 1, #g, 2 do f[g[n]] = g[n + 1] end
  if f['name'] == group then
    local lag = f['lag']
    if not lag then
      -- Redis cannot say (entries were deleted in the range): count them.
      lag = #redis.call('XRANGE', key, '(' .. f['last-delivered-id'], '+')
    end
    return lag + f['pending']
  end
end
return redis.call('XLEN', key)
