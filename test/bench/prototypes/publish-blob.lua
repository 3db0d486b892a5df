-- Prototype (benchmark only): one call carries a turn's entries of one topic as one pre-joined argument; the history
-- keeps one element per call ("<first seq> <count> <frame bytes> <epoch>\n" + the entries); the bus carries the same.
-- KEYS: meta, log. ARGV: keep (messages), budget (bytes), fresh epoch, channel, family, count, frame bytes, entries.
local keep, budget = tonumber(ARGV[1]), tonumber(ARGV[2])
local info = redis.call('INFO', 'replication')
local at = string.find(info, 'master_replid:', 1, true)
local rid = at and string.sub(info, at + 14, at + 53) or ''
local m = redis.call('HMGET', KEYS[1], 'seq', 'epoch', 'rid', 'bytes', 'n')
local seq, epoch, bytes, n = tonumber(m[1]) or 0, m[2], tonumber(m[4]) or 0, tonumber(m[5]) or 0
if seq == 0 or not epoch or m[3] ~= rid then
  seq, epoch, bytes, n = 0, ARGV[3], 0, 0
  redis.call('DEL', KEYS[2])
end
local k, size = tonumber(ARGV[6]), tonumber(ARGV[7])
local element = (seq + 1) .. ' ' .. k .. ' ' .. size .. ' ' .. epoch .. '\n' .. ARGV[8]
local len = redis.call('RPUSH', KEYS[2], element)
n, bytes = n + k, bytes + size
while len > 1 and (n > keep or bytes > budget) do
  local old = redis.call('LPOP', KEYS[2])
  local c, b = string.match(old, '^%d+ (%d+) (%d+) ')
  n, bytes, len = n - tonumber(c), bytes - tonumber(b), len - 1
end
redis.call('HSET', KEYS[1], 'seq', seq + k, 'epoch', epoch, 'bytes', bytes, 'n', n, 'rid', rid)
redis.call('PUBLISH', ARGV[4], element)
redis.call('PUBLISH', ARGV[5], element)
return {seq + 1, epoch}
