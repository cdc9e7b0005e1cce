//! The Lua scripts of the Redis hub. Each is one round trip and runs
//! atomically on the server, which is what keeps `seq`, the replay stream
//! and the live channel in step without a lock of our own. Key names and
//! their layout: `docs/decisions.md`, "Redis hub".

use std::sync::LazyLock;

use redis::Script;

/// Numbers and publishes one sequenced frame.
///
/// KEYS: seq counter, replay stream. ARGV: frame before the `seq`, frame
/// after it, the floor (`seq` already issued according to the store),
/// stream length bound, stream age bound (ms), live channel.
/// Returns `{seq, instances that got it}`.
///
/// `seq` is formatted with `%d`: Lua numbers are doubles, and `..` would
/// print a large one as `1e+15`. The stream's entries are keyed by `seq`
/// (`N-1`), so the length bound trims by `seq` (`MINID`): the entries of
/// the last `bound` numbers are kept, however many frames an entry holds.
pub(super) static PUBLISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local seq = redis.call('INCR', KEYS[1])
local floor = tonumber(ARGV[3])
if seq <= floor then
  seq = floor + 1
  redis.call('SET', KEYS[1], string.format('%d', seq))
end
local id = string.format('%d', seq)
local frame = ARGV[1] .. id .. ARGV[2]
local t = redis.call('TIME')
local now = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local keep = string.format('%d', math.max(seq - tonumber(ARGV[4]) + 1, 0))
redis.call('XADD', KEYS[2], 'MINID', '~', keep, id .. '-1', 'at', now, 'f', frame)
redis.call('PEXPIRE', KEYS[2], ARGV[5])
local n = redis.call('PUBLISH', ARGV[6], id .. ' ' .. frame)
return {seq, n}
",
    )
});

/// Numbers and publishes several sequenced frames (a reply's tokens that
/// were ready together), as [`PUBLISH`] does each, in one call.
///
/// KEYS: seq counter, replay stream. ARGV: the floor, stream length bound,
/// stream age bound (ms), live channel, then for each frame the part
/// before its `seq` and the part after. The frames go out as one message
/// on the live channel, one `seq frame` per line (an encoded frame holds
/// no raw newline), so each instance wakes once per batch, not per frame.
/// Returns `{last seq, instances that got them}`.
///
/// One counter step and one stream entry per batch, not per frame: the
/// numbers come from one `INCRBY`, and the entry (keyed by the batch's last
/// `seq`) holds the live message itself in its `m` field, which
/// [`ATTACH`] splits back into frames. Per-frame `INCR` and `XADD` were
/// most of Redis's time in the cluster bench.
pub(super) static PUBLISH_MANY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local floor = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local n = (#ARGV - 4) / 2
local last = redis.call('INCRBY', KEYS[1], n)
local first = last - n + 1
if first <= floor then
  first = floor + 1
  last = first + n - 1
  redis.call('SET', KEYS[1], string.format('%d', last))
end
local lines = {}
for k = 0, n - 1 do
  local id = string.format('%d', first + k)
  lines[k + 1] = id .. ' ' .. ARGV[5 + 2 * k] .. id .. ARGV[6 + 2 * k]
end
local body = table.concat(lines, '\n')
local keep = string.format('%d', math.max(last - tonumber(ARGV[2]) + 1, 0))
redis.call('XADD', KEYS[2], 'MINID', '~', keep, string.format('%d', last) .. '-1', 'at', now, 'm', body)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
local s = redis.call('PUBLISH', ARGV[4], body)
return {last, s}
",
    )
});

/// What a socket attaching needs, read in one step: the highest `seq`,
/// Redis's clock, and (resuming after N) the frames above N.
///
/// KEYS: seq counter, replay stream. ARGV: the floor, N (empty: not
/// resuming). Returns `{seq, now_ms, bumped, id, at, frame, id, at, frame…}`
/// where `bumped` is 1 when N was above every `seq` issued (the counter now
/// continues above N, as the in-process hub does). An entry of
/// [`PUBLISH_MANY`] (several frames in its `m` field, keyed by the last
/// one's `seq`) is split back into one `id, at, frame` per frame above N.
pub(super) static ATTACH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = tonumber(ARGV[1])
if cur < floor then
  cur = floor
  redis.call('SET', KEYS[1], string.format('%d', cur))
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {cur, now, 0}
if ARGV[2] == '' then return out end
local after = tonumber(ARGV[2])
if after > cur then
  redis.call('SET', KEYS[1], ARGV[2])
  out[1] = after
  out[3] = 1
  return out
end
if after == cur then return out end
local entries = redis.call('XRANGE', KEYS[2], string.format('%d', after + 1) .. '-0', '+')
for _, e in ipairs(entries) do
  local fields = e[2]
  local at, frame, many = '0', '', nil
  for i = 1, #fields, 2 do
    if fields[i] == 'at' then at = fields[i + 1] end
    if fields[i] == 'f' then frame = fields[i + 1] end
    if fields[i] == 'm' then many = fields[i + 1] end
  end
  if many then
    for line in string.gmatch(many, '[^\n]+') do
      local sp = string.find(line, ' ', 1, true)
      local seq = tonumber(string.sub(line, 1, sp - 1))
      if seq > after then
        table.insert(out, string.format('%d', seq) .. '-1')
        table.insert(out, at)
        table.insert(out, string.sub(line, sp + 1))
      end
    end
  else
    table.insert(out, e[1])
    table.insert(out, at)
    table.insert(out, frame)
  end
end
return out
",
    )
});

/// Extends a lease if this holder still has it. KEYS: lock. ARGV: holder
/// token, lease (ms). Returns 1 when extended, 0 when lost.
pub(super) static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
",
    )
});

/// Gives a lease back if this holder still has it. KEYS: lock. ARGV:
/// holder token.
pub(super) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

/// Takes the lease of a generation whose holder is gone: a reply is
/// recorded as running and nobody holds the lock. KEYS: lock, running.
/// ARGV: new holder token, lease (ms). Returns the orphaned response id,
/// or nil (nothing to take over).
pub(super) static TAKE_OVER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[2]) == 1 and redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return redis.call('GET', KEYS[2])
end
return false
",
    )
});

/// Claims an idempotency key. KEYS: the key's record. ARGV: response id,
/// ttl (ms). Returns nil when the key was new (now remembered), else the
/// response it started.
pub(super) static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return false
end
return redis.call('GET', KEYS[1])
",
    )
});

/// Asks the instance generating a reply to stop it. KEYS: running.
/// ARGV: live channel. Returns 1 when a reply was running.
pub(super) static STOP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('PUBLISH', ARGV[1], 'stop')
  return 1
end
return 0
",
    )
});

/// Counts one request of a rate limit in a fixed window shared by every
/// instance. KEYS: the window's counter. ARGV: the window (ms). Returns
/// `{requests counted in this window, ms until it ends}`. The first
/// request starts the window (its expiry); a counter found without one
/// (its expiry lost) gets it again, so no key outlives its window.
pub(super) static RATE_WINDOW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = redis.call('INCR', KEYS[1])
local left = redis.call('PTTL', KEYS[1])
if n == 1 or left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return {n, left}
",
    )
});

/// Counts one more socket of an org on this instance, unless the org's
/// sockets on every live instance already reach the cap.
///
/// KEYS: the org's counts (instance → sockets), its liveness (instance →
/// until when, ms, by Redis' clock). ARGV: this instance, the cap (0: none),
/// the lease (ms). An instance whose liveness has lapsed (it died, or lost
/// Redis) no longer counts and is removed. Returns 1 (counted) or 0
/// (refused).
pub(super) static SOCKET_ENTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[3])
local seen = redis.call('HGETALL', KEYS[2])
for i = 1, #seen, 2 do
  if seen[i] ~= ARGV[1] and tonumber(seen[i + 1]) < now then
    redis.call('HDEL', KEYS[1], seen[i])
    redis.call('HDEL', KEYS[2], seen[i])
  end
end
local total = 0
local counts = redis.call('HVALS', KEYS[1])
for i = 1, #counts do
  total = total + tonumber(counts[i])
end
local cap = tonumber(ARGV[2])
if cap > 0 and total >= cap then
  return 0
end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('HSET', KEYS[2], ARGV[1], now + lease)
redis.call('PEXPIRE', KEYS[1], 3 * lease)
redis.call('PEXPIRE', KEYS[2], 3 * lease)
return 1
",
    )
});

/// One socket of an org on this instance closed.
///
/// KEYS: the org's counts. ARGV: this instance. Never below zero: the
/// instance's next beat writes its true count anyway.
pub(super) static SOCKET_LEAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if n > 1 then
  redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
",
    )
});

/// This instance's beat for one org: its true socket count, and alive
/// for one more lease (a count of 0 removes it).
///
/// KEYS: the org's counts, its liveness. ARGV: this instance, its sockets
/// of the org, the lease (ms). The source, not a [`Script`]: a beat sends
/// one `EVAL` per org in one pipeline (redis-rs pipelines plain commands).
pub(super) const SOCKETS_BEAT: &str = r"
if tonumber(ARGV[2]) == 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], now + lease)
redis.call('PEXPIRE', KEYS[1], 3 * lease)
redis.call('PEXPIRE', KEYS[2], 3 * lease)
return 1
";
