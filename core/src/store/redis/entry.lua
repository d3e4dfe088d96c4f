#!lua flags=no-writes
-- A member's entry on a first_achiever board (see scripts.rs): its tie
-- from the shard's `:t:` hash, its score under its name (the tie's digits
-- and the member), and its meta.
local tie = redis.call('HGET', KEYS[2], ARGV[1])
if not tie then return {false, false, redis.call('HGET', KEYS[3], ARGV[1])} end
return {redis.call('ZSCORE', KEYS[1], tie .. ARGV[1]), tie, redis.call('HGET', KEYS[3], ARGV[1])}
