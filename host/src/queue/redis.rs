//! The queue on Redis, for scale-out (`REDIS_URL`): the same operations as the SQL queue, each
//! one Lua script, so every move between states is atomic whatever number of processes share it.
//!
//! Keys (all under a prefix, `codeai:` by default, `CODEAI_REDIS_PREFIX` to change it):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `task:{id}` | hash | the task: tenant, job, version, queue, trigger, fire, attempts, state, outcome; `d` name, most attempts and input, packed (see below) |
//! | `lane:{queue}:{tenant}` | list | one tenant's runnable task ids in one queue, oldest first |
//! | `lanes:{queue}` | sorted set | the queue's rotation: its tenants with runnable tasks, next first |
//! | `turns` | hash | per queue, the last place handed out in its rotation |
//! | `delayed` | sorted set | tasks waiting for their time (a later fire, a retry delay), by time |
//! | `active` | sorted set | leased tasks, by lease expiry (heartbeats push it on) |
//! | `fire:{job}:{instant}` | string | the task of a schedule fire (`SET NX`: a fire is enqueued once) |
//! | `jobtasks:{job}` | set | a job's pending and active tasks (overlap checks, cancel on delete) |
//! | `jobactive` | hash | active tasks per exclusive job (overlap policy `queue`) |
//! | `counts` | hash | `{queue}|{tenant}|{state}` → tasks (pending, scheduled, active, completed, failed) |
//! | `layout` | string | `lanes` once tasks of an older layout (one `ready:{queue}` list) were moved |
//!
//! **Tenants take turns within a queue** (see the [`queue`](super) module): a lease in a queue
//! takes the oldest task of the tenant at the head of the queue's rotation and moves that tenant
//! to the tail, so every tenant with runnable tasks has one leased per round, in the order the
//! tenants came. A tenant joins the tail when its lane gets a task while empty; a lane found
//! empty leaves the rotation. A call that leases many tasks reads the head of the rotation once
//! (as many tenants as it wants tasks), pops each tenant's share of ids with one `LPOP key
//! count`, and writes the tenants it served back to the tail, in the order it last served them,
//! with one command: a handful of commands per queue per call, nothing more per task. A released
//! task goes back to the head of its lane; a retried, deferred or due one to the tail.
//!
//! **A task's hash is laid out for its lease**, the hottest read: the fields a lease reads
//! first (`s`, `x`, `a`, `j`, `tr`, `f`, `v`), then `d`, the fields no script but the lease
//! reads (the job's name, the most attempts, the input) as one value, separated by the byte
//! 0xFF (which UTF-8 text never holds). A lease reads 8 fields instead of 12 and hands `d` on as
//! it is; while a hash is small (Redis's listpack encoding: every value up to
//! `hash-max-listpack-value`, 64 bytes by default, so a short input) its fields are found by a
//! scan from its start, so the fields read most come first. Measured with small inputs
//! (BENCHMARKS.md, session 18): a task's lease and finish about 1.5–2 µs less of Redis's time.
//!
//! **Upgrading.** Hashes written before (`n`, `m`, `in` as fields of their own) are still read:
//! a lease that finds no `d` reads those. The other way round does not hold: a worker of an
//! older version leasing a task written by this one finds no `n`, `m`, `in`, and would run it
//! with an empty input. So stop every worker of an older version before starting this one on
//! the same Redis, and do not go back to an older version while tasks it wrote wait.
//!
//! Finished tasks keep their hash for 7 days (retry of a failed execution, the API's view).
//! Durability is Redis's: run it with `appendonly yes` (AOF, `appendfsync everysec` or `always`)
//! so a restart loses no acknowledged task.

use super::backend::{Claim, Claimed, Finished, Lease, Leased, QueueBackend};
use super::{NewTask, QueueCounts, Task, TaskInfo};
use crate::store::ExecutionStatus;
use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use redis::Script;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::OnceLock;
use uuid::Uuid;

const PRELUDE: &str = r#"
local P = ARGV[1]
local function cnt(q, t, s, d) redis.call('HINCRBY', P .. 'counts', q .. '|' .. t .. '|' .. s, d) end
local function untrack(h, id)
  local job = redis.call('HGET', h, 'j')
  redis.call('SREM', P .. 'jobtasks:' .. job, id)
end
-- `jobactive` counts the active tasks of exclusive jobs only (the only ones that look).
local function deactivate(h, id)
  redis.call('ZREM', P .. 'active', id)
  local f = redis.call('HMGET', h, 'j', 'x')
  if f[2] == '1' then redis.call('HINCRBY', P .. 'jobactive', f[1], -1) end
  redis.call('HDEL', h, 'w')
end
-- Tenant `t`'s lane, which was empty, joins the tail of queue `q`'s rotation (unless it is
-- still in it).
local function join(q, t)
  redis.call('ZADD', P .. 'lanes:' .. q, 'NX', redis.call('HINCRBY', P .. 'turns', q, 1), t)
end
-- Puts task `id` of tenant `t` into its lane of queue `q`, last ('RPUSH') or first ('LPUSH').
local function ready(push, q, t, id)
  if redis.call(push, P .. 'lane:' .. q .. ':' .. t, id) == 1 then join(q, t) end
end
-- Takes task `id` out of `active`: its hash, queue and tenant; nil when it is not active.
local function take_active(id)
  local h = P .. 'task:' .. id
  if redis.call('HGET', h, 's') ~= 'active' then return nil end
  local q, t = redis.call('HGET', h, 'q'), redis.call('HGET', h, 't')
  deactivate(h, id)
  cnt(q, t, 'active', -1)
  return h, q, t
end
-- Active → pending now, the attempt given back, first ('LPUSH') or last ('RPUSH') in its lane;
-- false when the task is not active.
local function put_back(id, push)
  local h, q, t = take_active(id)
  if not h then return false end
  redis.call('HSET', h, 's', 'pending')
  redis.call('HINCRBY', h, 'a', -1)
  ready(push, q, t, id)
  cnt(q, t, 'pending', 1)
  return true
end
"#;

/// For the scripts that move many tasks: key names made once per call (a string built in Lua
/// costs about as much as a command); the changes to `counts` added up by queue, tenant and state
/// and written once per call (`add`, then `flush`); and the moves in and out of `active` and
/// `jobtasks:<job>` gathered and written with one command per key per call (`flush`), since a
/// command costs about the same with one member as with a hundred. Nothing in a script reads
/// those keys after changing them.
const BATCH_FN: &str = r#"
local K = {task = P .. 'task:', lane = P .. 'lane:', lanes = P .. 'lanes:', turns = P .. 'turns',
  active = P .. 'active', delayed = P .. 'delayed', jobactive = P .. 'jobactive',
  jobtasks = P .. 'jobtasks:'}
local D = {}
local ZADD, ZREM, SREM = {}, {}, {}
local function add(q, t, s, d)
  local dq = D[q]
  if not dq then dq = {}; D[q] = dq end
  local dt = dq[t]
  if not dt then dt = {}; dq[t] = dt end
  dt[s] = (dt[s] or 0) + d
end
-- One command per 1,000 arguments (Lua's `unpack` has a limit).
local function chunked(cmd, key, args)
  for i = 1, #args, 1000 do
    redis.call(cmd, key, unpack(args, i, math.min(i + 999, #args)))
  end
end
local function flush()
  for q, dq in pairs(D) do
    for t, dt in pairs(dq) do
      for s, d in pairs(dt) do
        if d ~= 0 then redis.call('HINCRBY', P .. 'counts', q .. '|' .. t .. '|' .. s, d) end
      end
    end
  end
  chunked('ZREM', K.active, ZREM)
  chunked('ZADD', K.active, ZADD)
  for job, ids in pairs(SREM) do chunked('SREM', K.jobtasks .. job, ids) end
end
"#;

/// `enqueue(now, tasks...)`: each task as 10 arguments (id, tenant, job, queue, trigger, fire,
/// run after, exclusive, version, and `d`: name, most attempts and input, packed as the module
/// says); returns how many were new. A task
/// whose id exists, or whose job has a task for its fire already, is skipped.
///
/// One call for many tasks: a call costs Redis more than most of its commands (the script's
/// arguments, its functions), so tasks enqueued together go in one, and what they add to shared
/// keys is written once per key: the job's task set (`SADD`), each lane (`RPUSH` of its tasks in
/// order, the lane joining its queue's rotation if it was empty, as one task at a time would),
/// the delayed set (`ZADD`) and the counts. (A script that failed halfway would leave the tasks
/// written so far without their lanes and counts, and a retry would skip them as existing; nothing
/// in it can fail on the arguments `enqueue_many` sends.)
const ENQUEUE: &str = r#"
local now = ARGV[2]
local nnow = tonumber(now)
local new = 0
local jobs, lanes, order, delayed = {}, {}, {}, {}
for i = 3, #ARGV, 10 do
  local id, tenant, job, queue = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local fire, runafter = ARGV[i + 5], ARGV[i + 6]
  local h = K.task .. id
  if redis.call('EXISTS', h) == 0 and (fire == '' or
      redis.call('SET', P .. 'fire:' .. job .. ':' .. fire, id, 'NX', 'EX', '604800')) then
    -- Numbers go to commands as the strings they came as (formatting one costs about a command).
    -- The fields a lease reads first, in its order (the module's doc).
    redis.call('HSET', h, 's', 'pending', 'x', ARGV[i + 7], 'a', '0', 'j', job, 'tr', ARGV[i + 4],
      'f', fire, 'v', ARGV[i + 8], 'd', ARGV[i + 9], 'q', queue, 't', tenant, 'ra', runafter,
      'c', now)
    local ids = jobs[job]
    if not ids then ids = {}; jobs[job] = ids end
    ids[#ids + 1] = id
    if tonumber(runafter) <= nnow then
      local lq = lanes[queue]
      if not lq then lq = {}; lanes[queue] = lq end
      local lane = lq[tenant]
      if not lane then
        lane = {q = queue, t = tenant, ids = {}}
        lq[tenant] = lane
        order[#order + 1] = lane
      end
      lane.ids[#lane.ids + 1] = id
      add(queue, tenant, 'pending', 1)
    else
      delayed[#delayed + 1] = runafter
      delayed[#delayed + 1] = id
      add(queue, tenant, 'scheduled', 1)
    end
    new = new + 1
  end
end
for job, ids in pairs(jobs) do chunked('SADD', K.jobtasks .. job, ids) end
chunked('ZADD', K.delayed, delayed)
-- Lanes in the order their first task came, each joining its queue's rotation when its list was
-- empty: the length after the first push is then that push's.
for _, lane in ipairs(order) do
  local key = K.lane .. lane.q .. ':' .. lane.t
  for j = 1, #lane.ids, 1000 do
    local last = math.min(j + 999, #lane.ids)
    local len = redis.call('RPUSH', key, unpack(lane.ids, j, last))
    if j == 1 and len == last then join(lane.q, lane.t) end
  end
end
flush()
return new
"#;

/// `claim(now, lease, owner, i)`: leases up to `n` tasks, choosing each one's queue as the
/// process's [`Picker`](super::Picker) would: ARGV[i] = n, ARGV[i+1] = '1' for strict priority,
/// ARGV[i+2] = the number of queues, then per queue (heaviest first) its name, weight and
/// credit. A queue found empty is not eligible for the rest of the call. Due delayed tasks are
/// moved to their queues first. Returns `{empties, tasks}`: the queues found empty, in order,
/// and per leased task one string (see `task_of`): how many of empties were found before it,
/// its queue, then the task, so the caller can replay the picks on its picker.
const CLAIM_FN: &str = r#"
-- The fields of a hash written before `d` (the module's doc) that `d` packs, in its order.
local UNPACKED = {'n', 'm', 'in'}
-- Each queue's rotation as far as this call has read it: `list` its lanes from the head, `at`
-- the next one to serve, `all` whether the whole rotation is read, `live` the lanes read that
-- are not found empty. A lane: its tenant `t`; `ids` popped from its list with one
-- `LPOP key count` and `i` the next to use (those not used go back to the head of the list,
-- `settle`); `dry` once its list is found empty; `last`, when it was last served in this call.
local R = {}
local served = 0
local function rotation(queue)
  local r = R[queue]
  if r == nil then
    r = {list = {}, at = 1, all = false, live = 0}
    R[queue] = r
  end
  return r
end
-- Reads the next `count` lanes of the rotation; false when there are no more.
local function more(queue, r, count)
  if r.all then return false end
  local got = redis.call('ZRANGE', K.lanes .. queue, #r.list, #r.list + count - 1)
  if #got < count then r.all = true end
  for _, t in ipairs(got) do r.list[#r.list + 1] = {t = t, ids = {}, i = 1} end
  r.live = r.live + #got
  return #got > 0
end
-- The next lane to serve: the rotation in order, round and round once all of it is read.
local function next_lane(queue, r, want)
  while true do
    if r.at > #r.list then
      if not more(queue, r, want) then
        if r.live == 0 then return nil end
        r.at = 1
      end
    end
    local lane = r.list[r.at]
    r.at = r.at + 1
    if not lane.dry then return lane end
  end
end
local function pop(queue, r, lane)
  if lane.i > #lane.ids then
    -- The lane's share of the tasks this call still wants, popped at once.
    local ids = redis.call('LPOP', K.lane .. queue .. ':' .. lane.t, math.ceil(r.want / r.live))
    if not ids then
      lane.dry = true
      r.live = r.live - 1
      return nil
    end
    lane.ids, lane.i = ids, 1
  end
  local id = lane.ids[lane.i]
  lane.i = lane.i + 1
  return id
end
-- Lanes not used go back; lanes found empty leave the rotation; lanes served go to its tail in
-- the order they were last served (one `ZADD`).
local function settle()
  for queue, r in pairs(R) do
    local again, gone = {}, {}
    for _, lane in ipairs(r.list) do
      local rest = {}
      for j = #lane.ids, lane.i, -1 do rest[#rest + 1] = lane.ids[j] end
      chunked('LPUSH', K.lane .. queue .. ':' .. lane.t, rest)
      if lane.dry then
        gone[#gone + 1] = lane.t
      elseif lane.last then
        again[#again + 1] = lane
      end
    end
    chunked('ZREM', K.lanes .. queue, gone)
    if #again > 0 then
      table.sort(again, function(a, b) return a.last < b.last end)
      local top = redis.call('HINCRBY', K.turns, queue, #again)
      local places = {}
      for j, lane in ipairs(again) do
        places[#places + 1] = top - #again + j
        places[#places + 1] = lane.t
      end
      chunked('ZADD', K.lanes .. queue, places)
    end
  end
end
-- Leases the next task of `queue`: the oldest of the lane whose turn it is. At most 1000 ids
-- are looked at (ids of tasks no longer pending are dropped; tasks of an exclusive job whose
-- previous run is active wait 100 ms in `delayed`).
local function lease_one(queue, now, lease_end, owner, want)
  local r = rotation(queue)
  r.want = want
  local budget = 1000
  while budget > 0 do
    local lane = next_lane(queue, r, want)
    if not lane then return nil end
    while budget > 0 do
      budget = budget - 1
      local id = pop(queue, r, lane)
      if not id then break end
      local h = K.task .. id
      local f = redis.call('HMGET', h, 's', 'x', 'a', 'j', 'tr', 'f', 'v', 'd')
      if f[1] == 'pending' then
        -- The lane is the task's queue and tenant.
        local t, job = lane.t, f[4] or ''
        if f[2] == '1' and tonumber(redis.call('HGET', K.jobactive, job) or '0') > 0 then
          redis.call('ZADD', K.delayed, now + 100, id)
          add(queue, t, 'pending', -1)
          add(queue, t, 'scheduled', 1)
        else
          local a = tostring((tonumber(f[3]) or 0) + 1)
          redis.call('HSET', h, 's', 'active', 'w', owner, 'a', a)
          ZADD[#ZADD + 1] = lease_end
          ZADD[#ZADD + 1] = id
          if f[2] == '1' then redis.call('HINCRBY', K.jobactive, job, 1) end
          add(queue, t, 'pending', -1)
          add(queue, t, 'active', 1)
          served = served + 1
          lane.last = served
          local d = f[8]
          if not d then
            local o = redis.call('HMGET', h, unpack(UNPACKED))
            for j = 1, #UNPACKED do o[j] = o[j] or '' end
            d = table.concat(o, '\255')
          end
          -- One string per task (a reply of one element parses far faster than of thirty):
          -- queue, id, attempt, tenant, job, trigger, fire, version, then `d`, joined by a
          -- byte that UTF-8 text never holds.
          return table.concat({queue, id, a, t, job, f[5] or '', f[6] or '', f[7] or '', d},
            '\255')
        end
      end
    end
  end
  return nil
end
local function claim(now, lease, owner, i)
  local n, strict, k = tonumber(ARGV[i]), ARGV[i + 1] == '1', tonumber(ARGV[i + 2])
  local qs = {}
  for j = 0, k - 1 do
    qs[#qs + 1] = {ARGV[i + 3 + 3 * j], tonumber(ARGV[i + 4 + 3 * j]), tonumber(ARGV[i + 5 + 3 * j])}
  end
  local due = redis.call('ZRANGEBYSCORE', K.delayed, '-inf', now, 'LIMIT', 0, 1000)
  for _, id in ipairs(due) do
    redis.call('ZREM', K.delayed, id)
    local h = K.task .. id
    local f = redis.call('HMGET', h, 'q', 't', 's')
    local q, t = f[1], f[2]
    if q and f[3] == 'pending' then
      ready('RPUSH', q, t, id)
      add(q, t, 'scheduled', -1)
      add(q, t, 'pending', 1)
    end
  end
  local out, empty, empties = {}, {}, {}
  -- A number is formatted for each command that gets it: format the lease's end once.
  local lease_end = tostring(now + lease)
  while #out < n do
    local best = nil
    for _, q in ipairs(qs) do
      if not empty[q[1]] then
        if strict then
          best = best or q
        elseif best == nil or q[3] + q[2] > best[3] + best[2]
            or (q[3] + q[2] == best[3] + best[2] and q[1] < best[1]) then
          best = q
        end
      end
    end
    if not best then break end
    local r = lease_one(best[1], now, lease_end, owner, n - #out)
    if r then
      if not strict then
        local total = 0
        for _, q in ipairs(qs) do
          if not empty[q[1]] then
            q[3] = q[3] + q[2]
            total = total + q[2]
          end
        end
        best[3] = best[3] - total
      end
      out[#out + 1] = tostring(#empties) .. '\255' .. r
    else
      empty[best[1]] = true
      empties[#empties + 1] = best[1]
    end
  end
  settle()
  return {empties, out}
end
"#;

/// `finish(id, outcome, error)`: active → done (completed, skipped) or dead.
const FINISH_FN: &str = r#"
local function finish(id, outcome, err)
  local h = K.task .. id
  local f = redis.call('HMGET', h, 's', 'q', 't', 'j', 'x')
  if f[1] ~= 'active' then return 0 end
  local q, t, job = f[2], f[3], f[4]
  ZREM[#ZREM + 1] = id
  if f[5] == '1' then redis.call('HINCRBY', K.jobactive, job, -1) end
  local ids = SREM[job]
  if not ids then ids = {}; SREM[job] = ids end
  ids[#ids + 1] = id
  local state = 'dead'
  if outcome == 'completed' or outcome == 'skipped' then state = 'done' end
  -- `w` emptied (no owner) in the same write as the state.
  redis.call('HSET', h, 's', state, 'o', outcome, 'e', err, 'w', '')
  redis.call('EXPIRE', h, '604800')
  add(q, t, 'active', -1)
  if state == 'done' then add(q, t, 'completed', 1) elseif outcome ~= 'cancelled' then add(q, t, 'failed', 1) end
  return 1
end
"#;

/// `heartbeat(now, lease, owner, ids...)`: extends the leases this owner still holds; returns
/// how many.
const HEARTBEAT: &str = r#"
local lease_end, owner, n = tonumber(ARGV[2]) + tonumber(ARGV[3]), ARGV[4], 0
for i = 5, #ARGV do
  local h = P .. 'task:' .. ARGV[i]
  local f = redis.call('HMGET', h, 's', 'w')
  if f[1] == 'active' and f[2] == owner then
    redis.call('ZADD', P .. 'active', lease_end, ARGV[i])
    n = n + 1
  end
end
return n
"#;

/// Active → pending later: a retry (ARGV[5] = '0') or a deferral that gives the attempt back
/// (ARGV[5] = '1').
const LATER: &str = r#"
local id, runafter, err, giveback = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local h, q, t = take_active(id)
if not h then return 0 end
redis.call('HSET', h, 's', 'pending', 'ra', runafter)
if err ~= '' then redis.call('HSET', h, 'e', err) end
if giveback == '1' then redis.call('HINCRBY', h, 'a', -1) end
redis.call('ZADD', P .. 'delayed', runafter, id)
cnt(q, t, 'scheduled', 1)
return 1
"#;

/// Active → pending now, attempt given back (shutdown).
const RELEASE: &str = r#"
if put_back(ARGV[2], 'LPUSH') then return 1 end
return 0
"#;

const REQUEUE_DEAD: &str = r#"
local id = ARGV[2]
local h = P .. 'task:' .. id
if redis.call('HGET', h, 's') ~= 'dead' then return 0 end
local q, t, job = redis.call('HGET', h, 'q'), redis.call('HGET', h, 't'), redis.call('HGET', h, 'j')
if redis.call('HGET', h, 'o') ~= 'cancelled' then cnt(q, t, 'failed', -1) end
redis.call('HSET', h, 's', 'pending', 'a', 0, 'o', '', 'tr', 'retry', 'ra', ARGV[3])
redis.call('PERSIST', h)
redis.call('SADD', P .. 'jobtasks:' .. job, id)
ready('RPUSH', q, t, id)
cnt(q, t, 'pending', 1)
return 1
"#;

const CANCEL_PENDING: &str = r#"
local id, err = ARGV[2], ARGV[3]
local h = P .. 'task:' .. id
if redis.call('HGET', h, 's') ~= 'pending' then return 0 end
local q, t = redis.call('HGET', h, 'q'), redis.call('HGET', h, 't')
if redis.call('ZREM', P .. 'delayed', id) == 1 then
  cnt(q, t, 'scheduled', -1)
else
  redis.call('LREM', P .. 'lane:' .. q .. ':' .. t, 0, id)
  cnt(q, t, 'pending', -1)
end
untrack(h, id)
redis.call('HSET', h, 's', 'dead', 'o', 'cancelled', 'e', err)
redis.call('EXPIRE', h, 604800)
return 1
"#;

/// `busy_besides(job, id, fire)`: 1 when the job has a pending or active task other than `id`
/// that is not of a fire later than `fire` (fires are RFC 3339 texts of one width: they compare
/// as strings).
const BUSY_BESIDES: &str = r#"
local job, me, fire = ARGV[2], ARGV[3], ARGV[4]
for _, id in ipairs(redis.call('SMEMBERS', P .. 'jobtasks:' .. job)) do
  if id ~= me then
    local f = redis.call('HMGET', P .. 'task:' .. id, 's', 'f')
    if (f[1] == 'pending' or f[1] == 'active') and (f[2] == '' or f[2] < fire) then return 1 end
  end
end
return 0
"#;

/// `drop_fires_after(job, after)`: deletes the job's pending tasks of fires later than `after`,
/// with their fire keys (so the fire can be enqueued again); returns how many.
const DROP_FIRES_AFTER: &str = r#"
local job, after = ARGV[2], ARGV[3]
local n = 0
for _, id in ipairs(redis.call('SMEMBERS', P .. 'jobtasks:' .. job)) do
  local h = P .. 'task:' .. id
  local f = redis.call('HMGET', h, 's', 'f', 'q', 't')
  if f[1] == 'pending' and f[2] and f[2] ~= '' and f[2] > after then
    if redis.call('ZREM', P .. 'delayed', id) == 1 then
      cnt(f[3], f[4], 'scheduled', -1)
    else
      redis.call('LREM', P .. 'lane:' .. f[3] .. ':' .. f[4], 0, id)
      cnt(f[3], f[4], 'pending', -1)
    end
    redis.call('SREM', P .. 'jobtasks:' .. job, id)
    redis.call('DEL', h, P .. 'fire:' .. job .. ':' .. f[2])
    n = n + 1
  end
end
return n
"#;

const RESCUE: &str = r#"
local now = tonumber(ARGV[2])
local expired = redis.call('ZRANGEBYSCORE', P .. 'active', '-inf', now, 'LIMIT', 0, 1000)
local n = 0
for _, id in ipairs(expired) do
  if put_back(id, 'RPUSH') then
    n = n + 1
  else
    redis.call('ZREM', P .. 'active', id)
  end
end
return n
"#;

/// `upgrade(key)`: moves the ids of an older `ready:{queue}` list into their lanes, in order.
const UPGRADE: &str = r#"
local key = ARGV[2]
local ids = redis.call('LRANGE', key, 0, -1)
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', P .. 'task:' .. id, 'q', 't', 's')
  if f[1] and f[3] == 'pending' then ready('RPUSH', f[1], f[2], id) end
end
redis.call('DEL', key)
return #ids
"#;

struct Scripts {
    upgrade: Script,
    enqueue: Script,
    finish_claim: Script,
    heartbeat: Script,
    finish: Script,
    later: Script,
    release: Script,
    requeue_dead: Script,
    cancel_pending: Script,
    rescue: Script,
    busy_besides: Script,
    drop_fires_after: Script,
}

fn scripts() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| {
        let s = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        let finish = "local r = finish(ARGV[2], ARGV[3], ARGV[4])\n\
            flush()\n\
            return r";
        // ARGV[2] = k finishes, then k (id, outcome, error), then the claim's arguments.
        let finish_claim = "local k = tonumber(ARGV[2])\n\
            for j = 0, k - 1 do finish(ARGV[3 + 3 * j], ARGV[4 + 3 * j], ARGV[5 + 3 * j]) end\n\
            local i = 3 + 3 * k\n\
            local r = claim(tonumber(ARGV[i]), tonumber(ARGV[i + 1]), ARGV[i + 2], i + 3)\n\
            flush()\n\
            return r";
        Scripts {
            upgrade: s(UPGRADE),
            enqueue: s(&format!("{BATCH_FN}{ENQUEUE}")),
            finish_claim: s(&format!("{BATCH_FN}{FINISH_FN}{CLAIM_FN}{finish_claim}")),
            heartbeat: s(HEARTBEAT),
            finish: s(&format!("{BATCH_FN}{FINISH_FN}{finish}")),
            later: s(LATER),
            release: s(RELEASE),
            requeue_dead: s(REQUEUE_DEAD),
            cancel_pending: s(CANCEL_PENDING),
            rescue: s(RESCUE),
            busy_besides: s(BUSY_BESIDES),
            drop_fires_after: s(DROP_FIRES_AFTER),
        }
    })
}

/// `text` as a `SCAN MATCH` pattern that matches only itself.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn claim_args(invocation: &mut redis::ScriptInvocation<'_>, claim: &Claim<'_>) {
    invocation
        .arg(ms(claim.lease.now))
        .arg(claim.lease.length.as_millis() as i64)
        .arg(claim.lease.owner)
        .arg(claim.n)
        .arg(if claim.strict { "1" } else { "0" })
        .arg(claim.queues.len());
    for (name, weight, credit) in claim.queues {
        invocation.arg(name).arg(*weight).arg(*credit);
    }
}

fn claimed(reply: (Vec<String>, Vec<Vec<u8>>)) -> anyhow::Result<Claimed> {
    let (empties, rows) = reply;
    let tasks = rows
        .iter()
        .map(|row| task_of(row))
        .collect::<anyhow::Result<_>>()?;
    Ok(Claimed { empties, tasks })
}

/// A leased task as `lease_one` returns it: the number of empty queues found before it, its
/// queue, its id, attempt, tenant, job, trigger, fire and version, then `d` (name, most
/// attempts, input: see the module's doc), separated by 0xFF bytes.
fn task_of(row: &[u8]) -> anyhow::Result<Leased> {
    let mut it = row.splitn(12, |b| *b == 0xFF);
    let mut next = || -> anyhow::Result<String> {
        let field = it
            .next()
            .ok_or_else(|| anyhow::anyhow!("redis queue: a leased task's reply is short"))?;
        Ok(String::from_utf8(field.to_vec())?)
    };
    let before = next()?.parse().unwrap_or(0);
    let queue = next()?;
    let id = Uuid::parse_str(&next()?)?;
    let attempt = next()?.parse().unwrap_or(1);
    let tenant = next()?;
    let job_id = next()?;
    let trigger = next()?;
    let fire_at = DateTime::parse_from_rfc3339(&next()?)
        .ok()
        .map(|t| t.with_timezone(&Utc));
    let job_version = next()?.parse().ok();
    let job_name = next()?;
    let max_attempts = next()?.parse().unwrap_or(1);
    let input = next()?;
    let task = Task {
        id,
        tenant,
        job_id,
        job_name,
        job_version,
        queue: queue.clone(),
        trigger,
        input,
        fire_at,
        attempt,
        max_attempts,
    };
    Ok(Leased {
        before,
        queue,
        task,
    })
}

/// `d`, the fields no script but the lease reads (the module's doc): name, most attempts and
/// input, separated by 0xFF bytes.
fn packed(name: &str, max_attempts: i64, input: &str) -> Vec<u8> {
    let max_attempts = max_attempts.to_string();
    let mut d = Vec::with_capacity(name.len() + max_attempts.len() + input.len() + 2);
    for (i, part) in [name, &max_attempts, input].into_iter().enumerate() {
        if i > 0 {
            d.push(0xFF);
        }
        d.extend_from_slice(part.as_bytes());
    }
    d
}

/// The parts of `d` ([`packed`]): name, most attempts, input (missing parts empty).
fn unpacked(d: &[u8]) -> [String; 3] {
    let mut parts = d.splitn(3, |b| *b == 0xFF);
    std::array::from_fn(|_| String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned())
}

fn failed(e: redis::RedisError) -> anyhow::Error {
    anyhow::Error::new(e).context("redis queue")
}

/// The Redis side of the queue.
#[derive(Clone)]
pub struct RedisQueue {
    con: ConnectionManager,
    client: redis::Client,
    prefix: String,
}

impl RedisQueue {
    /// Every field of the hash `{prefix}{key}`.
    async fn hash<V: redis::FromRedisValue>(
        &self,
        key: &str,
    ) -> anyhow::Result<HashMap<String, V>> {
        let mut con = self.con.clone();
        redis::cmd("HGETALL")
            .arg(format!("{}{key}", self.prefix))
            .query_async(&mut con)
            .await
            .map_err(failed)
    }

    /// The ids of a job's pending and active tasks.
    async fn job_tasks(&self, job_id: &str) -> anyhow::Result<Vec<String>> {
        let mut con = self.con.clone();
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(format!("{}jobtasks:{job_id}", self.prefix))
            .query_async(&mut con)
            .await
            .map_err(failed)?;
        Ok(ids)
    }

    /// Connects (reconnecting by itself later). `prefix` namespaces every key.
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<RedisQueue> {
        let client = redis::Client::open(url).map_err(failed)?;
        // redis-rs gives up on an answer after 500 ms by default; a Redis that fsyncs every
        // write (`appendfsync always`) on a busy disk can take longer, and a script that ran
        // but whose answer was dropped leaves its tasks to the lease. Wait longer.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(std::time::Duration::from_secs(5)))
            .set_connection_timeout(Some(std::time::Duration::from_secs(5)));
        let con = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(failed)?;
        let queue = RedisQueue {
            con,
            client,
            prefix: prefix.to_string(),
        };
        queue.upgrade_layout().await?;
        Ok(queue)
    }

    /// Moves the runnable tasks of the older layout (one `ready:{queue}` list per queue, before
    /// tenants took turns) into their tenants' lanes, once per Redis: `layout` records it.
    async fn upgrade_layout(&self) -> anyhow::Result<()> {
        let mut con = self.con.clone();
        let layout = format!("{}layout", self.prefix);
        let done: Option<String> = redis::cmd("GET")
            .arg(&layout)
            .query_async(&mut con)
            .await
            .map_err(failed)?;
        if done.as_deref() == Some("lanes") {
            return Ok(());
        }
        let pattern = format!("{}ready:*", glob_escape(&self.prefix));
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut con)
                .await
                .map_err(failed)?;
            for key in keys {
                let moved: i64 = scripts()
                    .upgrade
                    .arg(&self.prefix)
                    .arg(&key)
                    .invoke_async(&mut con)
                    .await
                    .map_err(failed)?;
                tracing::info!(%key, moved, "redis queue: tasks moved into their tenants' lanes");
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        let _: () = redis::cmd("SET")
            .arg(&layout)
            .arg("lanes")
            .query_async(&mut con)
            .await
            .map_err(failed)?;
        Ok(())
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Deletes every key under this queue's prefix (`codeai bench` and tests clean up with it):
    /// SCAN, not KEYS, so a large Redis is not blocked.
    pub async fn forget_all(&self) -> anyhow::Result<u64> {
        let mut con = self.con.clone();
        let mut cursor = 0u64;
        let mut deleted = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}*", glob_escape(&self.prefix)))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut con)
                .await
                .map_err(failed)?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("DEL")
                    .arg(&keys)
                    .query_async(&mut con)
                    .await
                    .map_err(failed)?;
                deleted += n;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    pub fn connection(&self) -> ConnectionManager {
        self.con.clone()
    }

    /// Runs one of the queue's scripts with the prefix and `args`; its integer reply.
    async fn run(&self, script: &Script, args: Vec<String>) -> anyhow::Result<i64> {
        let mut con = self.con.clone();
        let mut invocation = script.prepare_invoke();
        invocation.arg(&self.prefix);
        for a in args {
            invocation.arg(a);
        }
        invocation.invoke_async(&mut con).await.map_err(failed)
    }

    /// Puts a task back until `run_after`: after a failed attempt (`give_back` false), or with
    /// its attempt given back (a deferral).
    async fn later(
        &self,
        id: Uuid,
        run_after: DateTime<Utc>,
        error: &str,
        give_back: bool,
    ) -> anyhow::Result<()> {
        let give_back = if give_back { "1" } else { "0" };
        let args = vec![
            id.to_string(),
            ms(run_after).to_string(),
            error.to_string(),
            give_back.to_string(),
        ];
        self.run(&scripts().later, args).await.map(drop)
    }

    /// Cancels a pending task, recording `reason` as its error; false if it is not pending.
    async fn cancel_because(&self, id: Uuid, reason: &str) -> anyhow::Result<bool> {
        let args = vec![id.to_string(), reason.to_string()];
        Ok(self.run(&scripts().cancel_pending, args).await? == 1)
    }

    /// Worker slots in all live worker processes: `(total, busy, processes)`. Entries not seen
    /// for 10 s are removed (a killed worker drops out).
    pub async fn workers(&self) -> anyhow::Result<(u64, u64, u64)> {
        const STALE_MS: i64 = 10_000;
        let key = format!("{}workers", self.prefix);
        let mut con = self.con.clone();
        let all: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut con)
            .await
            .map_err(failed)?;
        let (mut total, mut busy, mut live) = (0, 0, 0);
        let now = ms(Utc::now());
        for (id, entry) in all {
            let v: serde_json::Value = serde_json::from_str(&entry).unwrap_or_default();
            if now - v["seen"].as_i64().unwrap_or(0) > STALE_MS {
                let _: Result<i64, _> = redis::cmd("HDEL")
                    .arg(&key)
                    .arg(&id)
                    .query_async(&mut con)
                    .await;
                continue;
            }
            total += v["slots"].as_u64().unwrap_or(0);
            busy += v["busy"].as_u64().unwrap_or(0);
            live += 1;
        }
        Ok((total, busy, live))
    }
}

#[async_trait::async_trait]
impl QueueBackend for RedisQueue {
    async fn enqueue_many(&self, tasks: &[NewTask]) -> anyhow::Result<u64> {
        // One script call per 500 tasks.
        let mut n = 0;
        for chunk in tasks.chunks(500) {
            let mut invocation = scripts().enqueue.prepare_invoke();
            invocation.arg(&self.prefix).arg(ms(Utc::now()));
            for t in chunk {
                let id = t.id.unwrap_or_else(super::new_task_id);
                invocation
                    .arg(id.to_string())
                    .arg(&t.tenant)
                    .arg(&t.job_id)
                    .arg(&t.queue)
                    .arg(&t.trigger)
                    .arg(
                        t.fire_at
                            .map_or(String::new(), |f| crate::store::sql::datetime_text(&f)),
                    )
                    .arg(ms(t.run_after))
                    .arg(if t.exclusive { "1" } else { "0" })
                    .arg(t.job_version.map_or(String::new(), |v| v.to_string()))
                    .arg(packed(&t.job_name, t.max_attempts.max(1), &t.input));
            }
            let mut con = self.con.clone();
            let new: u64 = invocation.invoke_async(&mut con).await.map_err(failed)?;
            n += new;
        }
        Ok(n)
    }

    /// One round trip, each task from the queue the picker would choose (moving due delayed
    /// tasks to their queues first). With no finishes it is a plain lease.
    async fn finish_and_claim(
        &self,
        done: &[Finished],
        claim: &Claim<'_>,
    ) -> anyhow::Result<Claimed> {
        let mut con = self.con.clone();
        let mut invocation = scripts().finish_claim.prepare_invoke();
        invocation.arg(&self.prefix).arg(done.len());
        for d in done {
            invocation
                .arg(d.id.to_string())
                .arg(d.outcome)
                .arg(d.error.as_deref().unwrap_or(""));
        }
        claim_args(&mut invocation, claim);
        let reply = invocation.invoke_async(&mut con).await.map_err(failed)?;
        claimed(reply)
    }

    async fn heartbeat(&self, ids: &[Uuid], lease: &Lease<'_>) -> anyhow::Result<u64> {
        let mut args = vec![
            ms(lease.now).to_string(),
            lease.length.as_millis().to_string(),
            lease.owner.to_string(),
        ];
        args.extend(ids.iter().map(Uuid::to_string));
        Ok(self.run(&scripts().heartbeat, args).await?.max(0) as u64)
    }

    async fn finish(&self, done: &Finished) -> anyhow::Result<()> {
        let error = done.error.clone().unwrap_or_default();
        let args = vec![done.id.to_string(), done.outcome.to_string(), error];
        self.run(&scripts().finish, args).await.map(drop)
    }

    async fn retry(&self, id: Uuid, run_after: DateTime<Utc>, error: &str) -> anyhow::Result<()> {
        self.later(id, run_after, error, false).await
    }

    async fn defer(&self, id: Uuid, run_after: DateTime<Utc>) -> anyhow::Result<()> {
        self.later(id, run_after, "", true).await
    }

    async fn release(&self, id: Uuid) -> anyhow::Result<()> {
        self.run(&scripts().release, vec![id.to_string()])
            .await
            .map(drop)
    }

    async fn requeue_dead(&self, id: Uuid, now: DateTime<Utc>) -> anyhow::Result<bool> {
        let args = vec![id.to_string(), ms(now).to_string()];
        Ok(self.run(&scripts().requeue_dead, args).await? == 1)
    }

    async fn cancel_pending(&self, id: Uuid) -> anyhow::Result<bool> {
        self.cancel_because(id, ExecutionStatus::Cancelled.as_str())
            .await
    }

    async fn rescue_expired(&self, now: DateTime<Utc>) -> anyhow::Result<u64> {
        let n = self
            .run(&scripts().rescue, vec![ms(now).to_string()])
            .await?;
        Ok(n.max(0) as u64)
    }

    /// Cancels every pending task of a job (deleted); returns how many.
    async fn cancel_job(&self, job_id: &str) -> anyhow::Result<u64> {
        let ids = self.job_tasks(job_id).await?;
        let mut n = 0;
        for id in ids {
            if let Ok(id) = Uuid::parse_str(&id) {
                if self.cancel_because(id, "job deleted").await? {
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    /// Jobs that have a pending or active task.
    async fn busy_jobs(&self, jobs: &[String]) -> anyhow::Result<HashSet<String>> {
        if jobs.is_empty() {
            return Ok(HashSet::new());
        }
        let mut pipe = redis::pipe();
        for j in jobs {
            pipe.cmd("SCARD")
                .arg(format!("{}jobtasks:{j}", self.prefix));
        }
        let mut con = self.con.clone();
        let sizes: Vec<i64> = pipe.query_async(&mut con).await.map_err(failed)?;
        Ok(jobs
            .iter()
            .zip(sizes)
            .filter(|(_, n)| *n > 0)
            .map(|(j, _)| j.clone())
            .collect())
    }

    async fn busy_besides(
        &self,
        job_id: &str,
        id: Uuid,
        fire: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let args = vec![
            job_id.to_string(),
            id.to_string(),
            crate::store::sql::datetime_text(&fire),
        ];
        Ok(self.run(&scripts().busy_besides, args).await? == 1)
    }

    async fn drop_fires_after(&self, job_id: &str, after: DateTime<Utc>) -> anyhow::Result<u64> {
        let args = vec![job_id.to_string(), crate::store::sql::datetime_text(&after)];
        Ok(self.run(&scripts().drop_fires_after, args).await?.max(0) as u64)
    }

    /// The versions of a job that its pending and active tasks will run.
    async fn versions_in_use(&self, job_id: &str) -> anyhow::Result<BTreeSet<i64>> {
        let ids = self.job_tasks(job_id).await?;
        if ids.is_empty() {
            return Ok(BTreeSet::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HGET")
                .arg(format!("{}task:{id}", self.prefix))
                .arg("v");
        }
        let mut con = self.con.clone();
        let versions: Vec<Option<String>> = pipe.query_async(&mut con).await.map_err(failed)?;
        // A task without a version runs version 1 (as the worker does); a hash gone since the
        // SMEMBERS is a task finished meanwhile.
        Ok(versions
            .into_iter()
            .flatten()
            .map(|v| v.parse().unwrap_or(1))
            .collect())
    }

    /// Tasks per queue and state (of one tenant, or all).
    async fn counts(
        &self,
        _now: DateTime<Utc>,
        tenant: Option<&str>,
    ) -> anyhow::Result<BTreeMap<String, QueueCounts>> {
        let all: HashMap<String, i64> = self.hash("counts").await?;
        let mut out: BTreeMap<String, QueueCounts> = BTreeMap::new();
        for (field, n) in all {
            let mut parts = field.splitn(3, '|');
            let (Some(q), Some(t), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            if tenant.is_some_and(|want| want != t) {
                continue;
            }
            let c = out.entry(q.to_string()).or_default();
            let n = n.max(0) as u64;
            match s {
                "pending" => c.pending += n,
                "scheduled" => c.scheduled += n,
                "active" => c.active += n,
                "completed" => c.completed += n,
                "failed" => c.failed += n,
                _ => {}
            }
        }
        Ok(out)
    }

    /// One task as the API shows it.
    async fn task_info(&self, id: Uuid) -> anyhow::Result<Option<TaskInfo>> {
        let mut h: HashMap<String, Vec<u8>> = self.hash(&format!("task:{id}")).await?;
        if h.is_empty() {
            return Ok(None);
        }
        // `d` as the fields it packs, as a hash written before `d` has them.
        if let Some(d) = h.remove("d") {
            for (field, value) in ["n", "m", "in"].into_iter().zip(unpacked(&d)) {
                h.insert(field.to_string(), value.into_bytes());
            }
        }
        let get = |k: &str| {
            h.get(k)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        let time = |k: &str| {
            get(k)
                .parse::<i64>()
                .ok()
                .and_then(DateTime::from_timestamp_millis)
        };
        Ok(Some(TaskInfo {
            task: Task {
                id,
                tenant: get("t"),
                job_id: get("j"),
                job_name: get("n"),
                job_version: get("v").parse().ok(),
                queue: get("q"),
                trigger: get("tr"),
                input: get("in"),
                fire_at: DateTime::parse_from_rfc3339(&get("f"))
                    .ok()
                    .map(|t| t.with_timezone(&Utc)),
                attempt: get("a").parse().unwrap_or(0),
                max_attempts: get("m").parse().unwrap_or(1),
            },
            state: get("s"),
            outcome: Some(get("o")).filter(|o| !o.is_empty()),
            last_error: Some(get("e")).filter(|e| !e.is_empty()),
            run_after: time("ra"),
            created_at: time("c"),
        }))
    }

    /// Publishes the id on `{prefix}cancel`; every worker process listens and cancels it if it
    /// runs it.
    async fn signal_cancel(&self, id: Uuid) -> anyhow::Result<bool> {
        let mut con = self.con.clone();
        let _listeners: i64 = redis::cmd("PUBLISH")
            .arg(format!("{}cancel", self.prefix))
            .arg(id.to_string())
            .query_async(&mut con)
            .await
            .map_err(failed)?;
        Ok(true)
    }

    async fn cluster_slots(&self) -> anyhow::Result<Option<(usize, usize)>> {
        let (total, busy, _) = self.workers().await?;
        Ok(Some((total as usize, busy as usize)))
    }
}
