#!lua flags=no-writes,allow-cross-slot-keys
local n = tonumber(ARGV[1])
local out, at = {}, 0
local function count(key)
  at = at + 1
  out[at] = redis.call('ZCARD', key)
  for i = 2, n + 1 do
    local bound = ARGV[i]
    out[at + 1] = redis.call('ZCOUNT', key, bound, '+inf')
    out[at + 2] = redis.call('ZCOUNT', key, '-inf', bound)
    at = at + 2
  end
end
count(KEYS[1])
for j = n + 2, #ARGV do count(ARGV[j]) end
return out
