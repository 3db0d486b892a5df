// The Lua scripts of the MQTT session store in Redis (redis-sessions.ts) and the keys they work on, all under `{g}`:
// one script per operation, so that each is atomic. A session is counted in the bound (`kept`) only while its client
// is away; the copy a live connection resumed stays stored, uncounted, until its owner keeps a newer one or drops it.

export const SESSION_KEYS = {
  /** Hash: client id → the session's JSON. */
  sessions: 'sb:{g}:mqtt:sessions',
  /** Sorted set: client id → when it was kept (ms). */
  kept: 'sb:{g}:mqtt:sessions:kept',
  /** Sorted set: client id → when it expires (ms); absent: never. */
  expires: 'sb:{g}:mqtt:sessions:expires',
  /** Hash: client id → the owner holding its session (a connection, from its CONNECT until it kept or released it). */
  owners: 'sb:{g}:mqtt:sessions:owners',
  /** Hash: client id → the owner holding it whose session ends with its connection (5.0 expiry 0): a claim that overrides that hold removes the session. */
  ending: 'sb:{g}:mqtt:sessions:ending',
  /** Hash: client id → its session's expiry interval (ms; absent: never), restarted when a hold ends without a newer keep. */
  intervals: 'sb:{g}:mqtt:sessions:intervals',
} as const;

/** The largest session kept, encoded (its unacknowledged messages are what makes it big). */
export const SESSION_BYTES_MAX = 1024 * 1024;
/** Expired sessions removed per operation at most (the rest by later ones). */
const PURGE_MAX = 100;

/** KEYS: sessions, kept, expires, -, -, intervals. Removes the session of client id `id` (a Lua expression): stored, kept, expiry. */
const REMOVE = (id: string) => `redis.call('HDEL', KEYS[1], ${id}) redis.call('ZREM', KEYS[2], ${id}) redis.call('ZREM', KEYS[3], ${id}) redis.call('HDEL', KEYS[6], ${id})`;

/** KEYS: sessions, kept, expires. Removes expired sessions (at most PURGE_MAX), before `now` (a Lua expression). */
const PURGE_AT = (now: string) => `
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ${now}, 'LIMIT', 0, ${PURGE_MAX})
for _, id in ipairs(gone) do
  ${REMOVE('id')}
end
`;
/** KEYS: sessions, kept, expires. ARGV: now. */
const PURGE = PURGE_AT('ARGV[1]');

/**
 * KEYS: sessions, kept, expires. Removes the least recently kept sessions over `max` (a Lua expression). Only sessions
 * whose clients are away are in `kept`: the copy a live connection resumed is not counted.
 */
const TRIM = (max: string) => `
local over = redis.call('ZCARD', KEYS[2]) - tonumber(${max})
if over > 0 then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, over - 1)) do
    ${REMOVE('id')}
  end
end
`;

/**
 * KEYS: sessions, kept, expires, -, -, intervals. A session left stored by a hold that ended without a newer one (`id`,
 * a Lua expression) is counted again (kept now), and its expiry interval starts again now: a held session does not
 * expire while its connection lives (5.0: the interval counts from the end of the connection).
 */
const AWAY_AGAIN = (id: string, now: string) => `
if redis.call('HEXISTS', KEYS[1], ${id}) == 1 and not redis.call('ZSCORE', KEYS[2], ${id}) then
  redis.call('ZADD', KEYS[2], ${now}, ${id})
  local ms = redis.call('HGET', KEYS[6], ${id})
  if ms then redis.call('ZADD', KEYS[3], tonumber(${now}) + tonumber(ms), ${id}) end
end
`;

/**
 * KEYS: sessions, kept, expires, owners, ending, intervals. ARGV: now, client id, owner, force ('1' or ''), resume ('1'
 * or ''). Makes the owner the session's holder and returns {1, the session (absent if none
 * or expired)}; {0, holder} when another owner holds it and force is not set. A resumed session stays stored (not
 * counted in the bound: its client is not away) until its owner keeps a newer one or drops it, so a claim whose
 * answer is lost does not lose it; one whose accepted connection was marked as ending (MARK_ENDING) is removed by a
 * claim that overrides that hold. Without resume it is removed.
 */
export const TAKE = `${PURGE}
local holder = redis.call('HGET', KEYS[4], ARGV[2])
if holder and holder ~= ARGV[3] and ARGV[4] ~= '1' then return {0, holder} end
if holder and holder ~= ARGV[3] and redis.call('HGET', KEYS[5], ARGV[2]) == holder then
  ${REMOVE('ARGV[2]')}
end
redis.call('HDEL', KEYS[5], ARGV[2])
redis.call('HSET', KEYS[4], ARGV[2], ARGV[3])
local at = redis.call('ZSCORE', KEYS[3], ARGV[2])
if at and tonumber(at) <= tonumber(ARGV[1]) then
  ${REMOVE('ARGV[2]')}
end
local s = redis.call('HGET', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[2])
-- Held: it does not expire while its connection lives (its interval starts again when the hold ends, AWAY_AGAIN).
redis.call('ZREM', KEYS[3], ARGV[2])
if ARGV[5] ~= '1' then
  ${REMOVE('ARGV[2]')}
end
if s then return {1, s} end
return {1}
`;

/** KEYS: owners, ending. ARGV: client id, owner. Marks the owner's session as ending with its connection; 0 when it no longer holds it. */
export const MARK_ENDING = `
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
`;

/**
 * KEYS: sessions, kept, expires, owners, ending, intervals. ARGV: now, client id, session, expires at ('' never), max
 * sessions, owner. Keeps the session and ends the owner's hold; 0 (nothing kept) when the owner no longer
 * holds it.
 */
export const KEEP = `${PURGE}
if redis.call('HGET', KEYS[4], ARGV[2]) ~= ARGV[6] then return 0 end
redis.call('HDEL', KEYS[4], ARGV[2])
redis.call('HDEL', KEYS[5], ARGV[2])
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
if ARGV[4] == '' then
  redis.call('ZREM', KEYS[3], ARGV[2])
  redis.call('HDEL', KEYS[6], ARGV[2])
else
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
  redis.call('HSET', KEYS[6], ARGV[2], math.max(0, tonumber(ARGV[4]) - tonumber(ARGV[1])))
end
${TRIM('ARGV[5]')}
return 1
`;

/**
 * KEYS: sessions, kept, expires, owners, ending, intervals. ARGV: client id, owner, drop ('1' or ''), now, max sessions. Ends the
 * owner's hold (if it still holds the session); with drop removes what is stored for it, otherwise what it resumed
 * is counted again as a session whose client is away.
 */
export const RELEASE = `
if redis.call('HGET', KEYS[4], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[4], ARGV[1])
  redis.call('HDEL', KEYS[5], ARGV[1])
  if ARGV[3] == '1' then
    ${REMOVE('ARGV[1]')}
  else
    ${AWAY_AGAIN('ARGV[1]', 'ARGV[4]')}
    ${PURGE_AT('ARGV[4]')}
    ${TRIM('ARGV[5]')}
  end
end
return 1
`;

/**
 * KEYS: sessions, kept, expires, owners, ending, intervals, nodes. ARGV: node, now, max sessions, then client ids. Ends the holds
 * of `node` among those client ids, unless the node is a member again (it came back: its connections still hold their
 * sessions); -1 then. What those connections resumed is counted again as sessions whose clients are away (removed,
 * for one that was ending with its connection). Returns how many ended.
 */
export const FORGET = `
if redis.call('SISMEMBER', KEYS[7], ARGV[1]) == 1 then return -1 end
local prefix = ARGV[1] .. '/'
local n = 0
for i = 4, #ARGV do
  local holder = redis.call('HGET', KEYS[4], ARGV[i])
  if holder and string.sub(holder, 1, #prefix) == prefix then
    redis.call('HDEL', KEYS[4], ARGV[i])
    if redis.call('HGET', KEYS[5], ARGV[i]) == holder then
      redis.call('HDEL', KEYS[5], ARGV[i])
      ${REMOVE('ARGV[i]')}
    else
      ${AWAY_AGAIN('ARGV[i]', 'ARGV[2]')}
    end
    n = n + 1
  end
end
${PURGE_AT('ARGV[2]')}
${TRIM('ARGV[3]')}
return n
`;
