package rdb

import "github.com/redis/go-redis/v9"

// Dedup decides and/or records a poll's items for one subscription.
// KEYS: DedupSeen (zset of 8-byte key hashes scored by item time in ms, or
// by an insertion counter for items without time), DedupMeta (hash: seeded,
// hwm, floor, seq, backlog), and optionally a list of the same
// subscription (HistoryPolls) that a commit or mark pushes an entry onto,
// so that a poll's record costs no round trip of its own. ARGV: mode
// (decide, commit, mark, note: records keys that arrived by webhook and
// leaves seeded, hwm, floor and the set's size to the polls, which have not
// walked down to them yet), keep, backfill, backlog ("" leaves it, "-"
// removes it, else the JSON to store; commit and mark only), the list
// entry ("" = none), how many entries the list keeps, its ttl in ms, then
// pairs of (hash, time ms or 0). Returns {seeded before, hwm, known flags,
// new flags, when the first commit seeded it (ms, "0": not yet; "1" for
// state seeded before the time was kept)}.
var Dedup = redis.NewScript(`
local mode, keep, backfill, backlog = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local entry, entryKeep, entryTTL = ARGV[5], tonumber(ARGV[6]), ARGV[7]
local meta = redis.call('HMGET', KEYS[2], 'seeded', 'hwm', 'floor', 'seq')
local seeded = meta[1] and true or false
local hwm = tonumber(meta[2]) or 0
local floor = tonumber(meta[3]) or 0
local seq = tonumber(meta[4]) or 0
local n = (#ARGV - 7) / 2
local known, new = {}, {}
if mode ~= 'commit' and n > 0 then
  local members = {}
  for i = 1, n do members[i] = ARGV[6 + 2*i] end
  local scores = redis.call('ZMSCORE', KEYS[1], unpack(members))
  for i = 1, n do
    local t = tonumber(ARGV[7 + 2*i])
    if scores[i] or (t > 0 and t <= floor) then known[i] = 1 else known[i] = 0 end
    if seeded then new[i] = 1 - known[i] elseif i > n - backfill then new[i] = 1 else new[i] = 0 end
  end
end
if mode ~= 'decide' then
  local args, low = {}, nil
  for i = 1, n do
    local t = tonumber(ARGV[7 + 2*i])
    local score = t
    if t <= 0 then seq = seq + 1; score = seq
    elseif mode ~= 'note' then
      if t > hwm then hwm = t end
      if low == nil or t < low then low = t end
    end
    args[#args + 1] = score
    args[#args + 1] = ARGV[6 + 2*i]
  end
  if #args > 0 then redis.call('ZADD', KEYS[1], unpack(args)) end
  if mode == 'note' then
    redis.call('HSET', KEYS[2], 'seq', seq)
    return {seeded and 1 or 0, tostring(hwm), known, new, meta[1] or '0'}
  end
  if not seeded and low ~= nil and low > floor then floor = low end
  local c = redis.call('ZCARD', KEYS[1])
  if c > keep then
    local gone = redis.call('ZRANGE', KEYS[1], c - keep - 1, c - keep - 1, 'WITHSCORES')
    local top = tonumber(gone[2])
    redis.call('ZREMRANGEBYRANK', KEYS[1], 0, c - keep - 1)
    if hwm > 0 and top > floor then floor = top end
  end
  if not seeded then
    local now = redis.call('TIME')
    redis.call('HSET', KEYS[2], 'seeded', now[1] * 1000 + math.floor(now[2] / 1000))
  end
  redis.call('HSET', KEYS[2], 'hwm', hwm, 'floor', floor, 'seq', seq)
  if backlog == '-' then redis.call('HDEL', KEYS[2], 'backlog')
  elseif backlog ~= '' then redis.call('HSET', KEYS[2], 'backlog', backlog) end
  if KEYS[3] and entry ~= '' then
    redis.call('LPUSH', KEYS[3], entry)
    redis.call('LTRIM', KEYS[3], 0, entryKeep - 1)
    redis.call('PEXPIRE', KEYS[3], entryTTL)
  end
end
return {seeded and 1 or 0, tostring(hwm), known, new, meta[1] or '0'}
`)

// HistoryPush pushes an entry onto a capped history list and renews its
// expiry, in one call. KEYS: HistoryPolls or HistoryChains. ARGV: the
// entry, how many entries the list keeps, its ttl in ms.
var HistoryPush = redis.NewScript(`
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`)

// RatePause extends a resource's pause to ARGV[1] ms from now, never
// shortening it. KEYS: RatePause.
var RatePause = redis.NewScript(`
local left = redis.call('PTTL', KEYS[1])
if left < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) end
return 1`)

// ConnUpdateMeta replaces a stored connection's metadata, if it exists.
// KEYS: Conn. ARGV: meta. Returns 0 when there is no such connection.
var ConnUpdateMeta = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], 'meta') == 0 then return 0 end
redis.call('HSET', KEYS[1], 'meta', ARGV[1])
return 1`)

// ConnSwapSecret replaces a connection's sealed credential only if it is
// still ARGV[1] (no refresh replaced it meanwhile). KEYS: Conn. ARGV: old,
// new.
var ConnSwapSecret = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'secret') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'secret', ARGV[2])
return 1`)

// ConnLock takes a connection's refresh lock when free, with a fresh
// fencing token as its value. KEYS: ConnLock, ConnFence. ARGV: ttl ms.
// Returns the token, or 0 when the lock is held.
var ConnLock = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local f = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], f, 'PX', ARGV[1])
return f`)

// ConnUnlock releases a refresh lock if it still holds the caller's
// fencing token. KEYS: ConnLock. ARGV: token.
var ConnUnlock = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// ConnFencedWrite stores a refreshed connection only while the writer
// still holds the lock with its fencing token and no later token was
// written. KEYS: Conn, ConnLock. ARGV: token, meta, sealed secret ("" =
// keep). Returns 0 when refused.
var ConnFencedWrite = redis.NewScript(`
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
local last = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
if last >= tonumber(ARGV[1]) then return 0 end
if redis.call('HEXISTS', KEYS[1], 'meta') == 0 then return 0 end
redis.call('HSET', KEYS[1], 'meta', ARGV[2], 'fence', ARGV[1])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'secret', ARGV[3]) end
return 1`)

// ConnStatesLiftUnstored lifts the state of every connection that is not
// in the store (static connections, fixed by editing their file or
// environment and reloading). KEYS: ConnStates, Conns. Returns how many it
// lifted.
var ConnStatesLiftUnstored = redis.NewScript(`
local ids = redis.call('HKEYS', KEYS[1])
local n = 0
for _, id in ipairs(ids) do
  if redis.call('SISMEMBER', KEYS[2], id) == 0 then redis.call('HDEL', KEYS[1], id); n = n + 1 end
end
return n`)

// WebhookAccept stores a webhook event once per webhookId. KEYS:
// WebhookSeen, WebhookEvents. ARGV: seen ttl ms, then the entry's field
// and value pairs. Returns the stream entry id, or false when the
// webhookId was accepted before.
var WebhookAccept = redis.NewScript(`
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return false end
local fields = {}
for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
return redis.call('XADD', KEYS[2], '*', unpack(fields))`)

// WebhookDone acknowledges processed entries and deletes them from the
// stream. KEYS: WebhookEvents. ARGV: group, then entry ids.
var WebhookDone = redis.NewScript(`
local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
return redis.call('XDEL', KEYS[1], unpack(ids))`)

// TenantChange sets or deletes a tenant at the next version, atomically.
// A set tenant's id is recorded in the change set at that version; a
// deleted one leaves no trace but the version of the last removal. KEYS:
// Tenants, TenantsVersion, TenantsChanges, TenantsRemoved. ARGV: id, the
// tenant JSON ("" deletes). Returns the new version.
var TenantChange = redis.NewScript(`
local v = redis.call('INCR', KEYS[2])
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('SET', KEYS[4], v)
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('ZADD', KEYS[3], v, ARGV[1])
end
return v`)

// TenantPace reserves ARGV[2] chain slots of a tenant, one every ARGV[3]
// ms, after those reserved before; a tenant idle for a while has ARGV[4]
// slots banked, so a small fan-out runs at once. KEYS: TenantPace. ARGV:
// now (ms), n, every (ms), banked. Returns the time of the first slot (ms).
var TenantPace = redis.NewScript(`
local now, n, every, banked = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
local start = math.max(nxt, now - banked * every)
local last = start + n * every
redis.call('SET', KEYS[1], string.format('%d', last), 'PX', math.max(last - now, 0) + 60000)
return string.format('%d', start)`)

// SchedulerClaim takes up to ARGV[2] subscriptions due at ARGV[1] (unix
// ms) and moves each to its next due time. Missed slots collapse into the
// latest.
// A subscription more than ARGV[3] ms late (the schedulers were down) is
// not polled at once: it moves to its next place in its interval, marked
// half a millisecond early so that it is never put off twice, and the polls
// owed after an outage spread over the interval instead of starting
// together. A stretch factor in KEYS[2] lengthens the step to the next due
// time: the subscription moves to a grid of the stretched interval, at the
// phase SetStretch gave it, so that stretched subscriptions spread over
// the stretched interval. It returns {member, slot, previous due, next
// due} for each subscription to poll, then the number put off. KEYS:
// SchedulerDue, SchedulerStretch. ARGV: now, limit, grace (ms).
var SchedulerClaim = redis.NewScript(`
local now, limit, grace = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit)
local out, deferred = {}, 0
local stretched = redis.call('EXISTS', KEYS[2]) == 1
for i = 1, #due, 2 do
  local m, score = due[i], tonumber(due[i + 1])
  local ms, sub = string.match(m, '^(%d+):(.*)$')
  local every = tonumber(ms)
  if every and every > 0 then
    local base = math.ceil(score)
    local latest = base + math.floor((now - base) / every) * every
    if now - score > grace and score == base then
      redis.call('ZADD', KEYS[1], latest + every - 0.5, m)
      deferred = deferred + 1
    else
      local nextDue = latest + every
      local st = stretched and redis.call('HGET', KEYS[2], sub)
      if st then
        -- "factor:phase": the stretched interval, at the phase set for
        -- the subscription in it
        local fs, ps = string.match(st, '^([%d.]+):([%d.]+)$')
        local f, phase = tonumber(fs), tonumber(ps)
        if f and phase and f > 1 then
          local step = math.floor(every * f)
          local off = math.floor(step * phase)
          nextDue = (math.floor((now - off) / step) + 1) * step + off
        end
      end
      redis.call('ZADD', KEYS[1], nextDue, m)
      out[#out + 1] = m
      out[#out + 1] = string.format('%d', math.floor(latest / every))
      out[#out + 1] = string.format('%.1f', score)
      out[#out + 1] = string.format('%d', nextDue)
    end
  else
    redis.call('ZREM', KEYS[1], m)
  end
end
out[#out + 1] = tostring(deferred)
return out
`)

// SchedulerUnclaim puts a subscription back to its previous due time, when
// no other claim moved it since. KEYS: SchedulerDue. ARGV: member, the due
// time the claim set, the previous due time.
var SchedulerUnclaim = redis.NewScript(`
local cur = redis.call('ZSCORE', KEYS[1], ARGV[1])
if cur and tonumber(cur) == tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
  return 1
end
return 0
`)

// AsynqDropOrphan removes a running task whose worker stopped extending its
// lease (killed), as asynq's recoverer would a minute or more later, so
// that its id can be enqueued again. KEYS: AsynqTask, AsynqActive,
// AsynqLease (one queue's hash tag). ARGV: the task id, the unix second
// before which a lease counts as abandoned. Returns 1 when it removed the
// task.
var AsynqDropOrphan = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'state') ~= 'active' then return 0 end
local lease = redis.call('ZSCORE', KEYS[3], ARGV[1])
if not lease or tonumber(lease) >= tonumber(ARGV[2]) then return 0 end
redis.call('LREM', KEYS[2], 0, ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[1])
return 1
`)
