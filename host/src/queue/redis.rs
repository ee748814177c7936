//! The queue on Redis, for scale-out (`REDIS_URL`): the same operations as the SQL queue, each
//! one Lua script, so every move between states is atomic whatever number of processes share it.
//!
//! Keys (all under a prefix, `codeai:` by default, `CODEAI_REDIS_PREFIX` to change it):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `td` | hash | per task id, what its request says (see below), written when it is enqueued (its trigger and time to run rewritten when it is retried, deferred or run again) |
//! | `ts` | hash | per task id, its state: `pending`, `active`, `done` or `dead`, its attempts, and its owner and when it was leased (active) or its outcome and when it ended (ended) |
//! | `te` | hash | per task id, its last error, if it has one |
//! | `ended:{hour}` | list | the tasks that ended in that hour (ms since the epoch / 3,600,000): forgotten 7 days after |
//! | `endedhours` | sorted set | the hours that have an `ended:{hour}` list |
//! | `lane:{queue}:{tenant}` | list | one tenant's runnable task ids in one queue, oldest first |
//! | `lanes:{queue}` | sorted set | the queue's rotation: its tenants with runnable tasks, next first |
//! | `turns` | hash | per queue, the last place handed out in its rotation |
//! | `delayed` | sorted set | tasks waiting for their time (a later fire, a retry delay), by time |
//! | `held:{owner}` | set | the tasks a worker process (`owner`) has leased and not yet ended or put back |
//! | `owners` | sorted set | worker processes holding tasks, by lease expiry (each lease call and heartbeat pushes it on) |
//! | `fire:{job}:{instant}` | string | the task of a schedule fire (`SET NX`: a fire is enqueued once) |
//! | `jobtasks:{job}` | set | a job's pending and active tasks (overlap checks, cancel on delete) |
//! | `jobactive` | hash | active tasks per exclusive job (overlap policy `queue`) |
//! | `counts` | hash | `{queue}|{tenant}|{state}` → tasks (pending, scheduled, active, completed, failed) |
//! | `layout` | string | `columns` once the tasks of the older layouts were moved (below) |
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
//! **Tasks are kept in columns**, three hashes keyed by task id (`td`, `ts`, `te`), not a hash
//! per task. A script that leases, finishes or enqueues many tasks reads and writes each column
//! with one command for all of them (`HMGET`, `HSET`); with a hash per task it made one command
//! per task for each, and a command run from a script costs Redis more in the script's glue
//! (its arguments and reply turned into Lua values) than the command itself (measured,
//! BENCHMARKS.md, session 19). A task's `td` is one value, its fields separated by the byte 0xFF
//! (which UTF-8 text never holds), in this order: exclusive (`1` or `0`), job, trigger, fire,
//! version, queue, tenant, enqueued at (ms), run after (ms), the job's name, the most attempts,
//! the input; a lease hands it on as it is. Its `ts` is state 0xFF attempts, then 0xFF owner
//! 0xFF leased at (ms) while active, or 0xFF outcome 0xFF ended at (ms) once ended. Errors,
//! rarer, are a column of their own.
//!
//! **Upgrading.** The layouts before kept a hash `task:{id}` per task (and, before tenants took
//! turns, one `ready:{queue}` list per queue). A worker of this version that connects to a
//! Redis of an older layout moves its tasks into their lanes and columns once (`layout` records
//! it). A worker of an older version does not read the columns: the tasks it pops from a lane
//! or from `delayed` it drops as gone, and they are lost (they stay `pending`, in no lane). So
//! stop every worker of an older version before starting this one on the same Redis, and do not
//! go back to an older version while tasks this one queued wait.
//!
//! **A lease is its owner's**, as in Sidekiq's reliable fetch: a worker process holds the tasks
//! it leased in one set, and one expiry for all of them, pushed on by each of its lease calls
//! and heartbeats. A process that dies or loses Redis stops pushing it; once it has run out, the
//! lease reaper (`rescue_expired`) puts all its tasks back. A live process's heartbeat names the
//! tasks it knows it holds, and puts back those it holds but does not know of (a lease call
//! whose answer never came, a put-back that failed) once they were leased more than two leases
//! and 10 s ago, as their own lease would have run out. (So one `Queue`, whose owner id is its
//! process's, is leased from by one worker pool.) (A task per lease expiry, a sorted set of every
//! leased task, cost Redis an insert and a removal in a skip list per task.)
//!
//! Ended tasks are kept for 7 days (retry of a failed execution, the API's view, an enqueue of
//! an id seen before skipped), then forgotten by the lease reaper, an hour's bucket at a time
//! (so 7 days to 7 days and an hour after they ended).
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

/// How long an ended task is kept, in ms (7 days).
const KEEP_ENDED_MS: i64 = 7 * 24 * 3600 * 1000;

const PRELUDE: &str = r#"
local P = ARGV[1]
local S = '\255'
local TD, TS, TE, OWNERS = P .. 'td', P .. 'ts', P .. 'te', P .. 'owners'
local HOUR = 3600000
-- The tasks owner `owner` holds (leased and not ended or put back).
local function held(owner) return P .. 'held:' .. owner end
local function cnt(q, t, s, d) redis.call('HINCRBY', P .. 'counts', q .. '|' .. t .. '|' .. s, d) end
-- The fields of a task's `td` (the module's doc), all twelve, missing ones empty.
local function parts(v)
  local out, at = {}, 1
  v = v or ''
  for i = 1, 11 do
    local j = string.find(v, S, at, true)
    if not j then break end
    out[i] = string.sub(v, at, j - 1)
    at = j + 1
  end
  out[#out + 1] = string.sub(v, at)
  for i = #out + 1, 12 do out[i] = '' end
  return out
end
local function td(id) return parts(redis.call('HGET', TD, id)) end
-- A task's state, attempts, and owner or outcome (`ts`); nil when the task is not known.
local function unstate(v)
  if not v then return nil end
  return string.match(v, '^([^\255]*)\255([^\255]*)\255([^\255]*)')
end
local function state(id) return unstate(redis.call('HGET', TS, id)) end
local function set_state(id, s, a, w) redis.call('HSET', TS, id, s .. S .. a .. S .. w) end
local function now_ms()
  local t = redis.call('TIME')
  return t[1] * 1000 + math.floor(t[2] / 1000)
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
-- Takes task `id` out of `active`: its fields and attempts; nil when it is not active.
local function take_active(id)
  local s, a, w = state(id)
  if s ~= 'active' then return nil end
  local p = td(id)
  redis.call('SREM', held(w), id)
  if p[1] == '1' then redis.call('HINCRBY', P .. 'jobactive', p[2], -1) end
  cnt(p[6], p[7], 'active', -1)
  return p, a
end
-- Active → pending now, the attempt given back, first ('LPUSH') or last ('RPUSH') in its lane;
-- false when the task is not active.
local function put_back(id, push)
  local p, a = take_active(id)
  if not p then return false end
  set_state(id, 'pending', tostring((tonumber(a) or 1) - 1), '')
  ready(push, p[6], p[7], id)
  cnt(p[6], p[7], 'pending', 1)
  return true
end
-- Task `id` ended at `at` (ms; its `ts` says so too): listed in the hour's bucket, whose tasks
-- are forgotten 7 days after (`FORGET`).
local function ended(id, at)
  local h = math.floor(tonumber(at) / HOUR)
  redis.call('RPUSH', P .. 'ended:' .. h, id)
  redis.call('ZADD', P .. 'endedhours', 'NX', h, h)
end
"#;

/// For the scripts that move many tasks: key names made once per call (a string built in Lua
/// costs about as much as a command); the changes to `counts` added up by queue, tenant and state
/// and written once per call (`add`, then `flush`); the writes to the task columns and the moves
/// in and out of the owners' `held` sets, the hour's `ended` bucket and `jobtasks:<job>`
/// gathered and written with one command per key per call (`flush`), since a command costs
/// about the same with one member as with a hundred. A script that reads a column it wrote to calls `flush_columns` first.
const BATCH_FN: &str = r#"
local K = {lane = P .. 'lane:', lanes = P .. 'lanes:', turns = P .. 'turns',
  delayed = P .. 'delayed', jobactive = P .. 'jobactive', jobtasks = P .. 'jobtasks:'}
local D = {}
-- Per job, tasks leaving its task set; per owner, tasks it no longer holds; tasks that ended
-- (at `ENDS_AT`).
local SREM, UNHELD, ENDS, ENDS_AT = {}, {}, {}, nil
local STATES, ERRORS, CLEARED = {}, {}, {}
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
-- `HMGET key ids...` for any number of ids: the values, in order (false for none).
local function column(key, ids)
  local out = {}
  for i = 1, #ids, 1000 do
    local got = redis.call('HMGET', key, unpack(ids, i, math.min(i + 999, #ids)))
    for _, v in ipairs(got) do out[#out + 1] = v end
  end
  return out
end
local function flush_columns()
  chunked('HSET', TS, STATES)
  chunked('HSET', TE, ERRORS)
  chunked('HDEL', TE, CLEARED)
  STATES, ERRORS, CLEARED = {}, {}, {}
end
-- `ids` added to `SREM`-like `sets[key]`.
local function gather(sets, key, id)
  local ids = sets[key]
  if not ids then ids = {}; sets[key] = ids end
  ids[#ids + 1] = id
end
local function flush()
  for q, dq in pairs(D) do
    for t, dt in pairs(dq) do
      for s, d in pairs(dt) do
        if d ~= 0 then redis.call('HINCRBY', P .. 'counts', q .. '|' .. t .. '|' .. s, d) end
      end
    end
  end
  flush_columns()
  for owner, ids in pairs(UNHELD) do chunked('SREM', held(owner), ids) end
  if #ENDS > 0 then
    local h = math.floor(tonumber(ENDS_AT) / HOUR)
    chunked('RPUSH', P .. 'ended:' .. h, ENDS)
    redis.call('ZADD', P .. 'endedhours', 'NX', h, h)
  end
  for job, ids in pairs(SREM) do chunked('SREM', K.jobtasks .. job, ids) end
end
"#;

/// `enqueue(now, tasks...)`: each task as 10 arguments (id, tenant, job, queue, trigger, fire,
/// run after, exclusive, version, and name, most attempts and input packed as in `td`);
/// returns how many were new. A task whose id is known (pending, active, or ended in the last
/// 7 days), or whose job has a task for its fire already, is skipped.
///
/// One call for many tasks: a call costs Redis more than most of its commands (the script's
/// arguments, its functions), so tasks enqueued together go in one, and what they add to shared
/// keys is written once per key: the columns (`HSET`), the job's task set (`SADD`), each lane
/// (`RPUSH` of its tasks in order, the lane joining its queue's rotation if it was empty, as one
/// task at a time would), the delayed set (`ZADD`) and the counts. (A script that failed halfway
/// would leave the fires claimed so far without their tasks; nothing in it can fail on the
/// arguments `enqueue_many` sends.)
const ENQUEUE: &str = r#"
local now = ARGV[2]
local nnow = tonumber(now)
local new = 0
local jobs, lanes, order, delayed, rows = {}, {}, {}, {}, {}
local ids = {}
for i = 3, #ARGV, 10 do ids[#ids + 1] = ARGV[i] end
local known = column(TS, ids)
local seen = {}
for n = 1, #ids do
  local i = 3 + (n - 1) * 10
  local id, tenant, job, queue = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local fire, runafter = ARGV[i + 5], ARGV[i + 6]
  if not known[n] and not seen[id] and (fire == '' or
      redis.call('SET', P .. 'fire:' .. job .. ':' .. fire, id, 'NX', 'EX', '604800')) then
    seen[id] = true
    -- Numbers go to commands as the strings they came as (formatting one costs about a command).
    rows[#rows + 1] = id
    rows[#rows + 1] = table.concat({ARGV[i + 7], job, ARGV[i + 4], fire, ARGV[i + 8], queue,
      tenant, now, runafter, ARGV[i + 9]}, S)
    STATES[#STATES + 1] = id
    STATES[#STATES + 1] = 'pending' .. S .. '0' .. S
    local jids = jobs[job]
    if not jids then jids = {}; jobs[job] = jids end
    jids[#jids + 1] = id
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
chunked('HSET', TD, rows)
for job, jids in pairs(jobs) do chunked('SADD', K.jobtasks .. job, jids) end
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
/// moved to their queues first. Returns `{empties, befores, ids, attempts, tds}`: the queues
/// found empty, in order, and per leased task how many of those were found before it (so the
/// caller can replay the picks on its picker), its id, attempt and `td` (each column an array,
/// so no string is made per task).
const CLAIM_FN: &str = r#"
-- Each queue's rotation as far as this call has read it: `list` its lanes from the head, `at`
-- the next one to serve, `all` whether the whole rotation is read, `live` the lanes read that
-- are not found empty. A lane: its tenant `t`; `ids` popped from its list with one
-- `LPOP key count`, their states `st` and fields `td` read with one `HMGET` each, and `i` the
-- next to use (those not used go back to the head of the list, `settle`); `dry` once its list
-- is found empty; `last`, when it was last served in this call.
local R = {}
local served = 0
-- Tasks leased in this call (their new state is written at its end), as a set and in order.
local taken, leased = {}, {}
-- Attempts after each of the first few, and an active task's state per attempt (strings made
-- once per call, not once per task).
local NEXT, ACTIVE = {}, {}
for j = 0, 19 do NEXT[tostring(j)] = tostring(j + 1) end
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
-- The lane's next task id, with its `ts` and `td`.
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
    lane.st = column(TS, ids)
    lane.td = column(TD, ids)
  end
  local i = lane.i
  lane.i = i + 1
  return lane.ids[i], lane.st[i], lane.td[i]
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
      local id, st, fields = pop(queue, r, lane)
      if not id then break end
      local a = string.match(st or '', '^pending\255(%d*)')
      if a and not taken[id] then
        -- The lane is the task's queue and tenant; exclusive is `td`'s first byte.
        fields = fields or ''
        local t, x = lane.t, string.byte(fields, 1) == 49
        local job
        if x then job = string.match(fields, '^[^\255]*\255([^\255]*)') end
        if x and tonumber(redis.call('HGET', K.jobactive, job) or '0') > 0 then
          redis.call('ZADD', K.delayed, now + 100, id)
          add(queue, t, 'pending', -1)
          add(queue, t, 'scheduled', 1)
        else
          a = NEXT[a] or tostring((tonumber(a) or 0) + 1)
          taken[id] = true
          leased[#leased + 1] = id
          local v = ACTIVE[a]
          if not v then
            v = 'active' .. S .. a .. S .. owner .. S .. now
            ACTIVE[a] = v
          end
          STATES[#STATES + 1] = id
          STATES[#STATES + 1] = v
          if x then redis.call('HINCRBY', K.jobactive, job, 1) end
          add(queue, t, 'pending', -1)
          add(queue, t, 'active', 1)
          served = served + 1
          lane.last = served
          return id, a, fields
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
  if #due > 0 then
    chunked('ZREM', K.delayed, due)
    local st = column(TS, due)
    local fields = column(TD, due)
    for j, id in ipairs(due) do
      if unstate(st[j]) == 'pending' then
        local p = parts(fields[j])
        ready('RPUSH', p[6], p[7], id)
        add(p[6], p[7], 'scheduled', -1)
        add(p[6], p[7], 'pending', 1)
      end
    end
  end
  -- Per task leased: how many queues were found empty before it, its id, attempt and `td`.
  local befores, out, attempts, tds, empty, empties = {}, {}, {}, {}, {}, {}
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
    local id, a, fields = lease_one(best[1], now, lease_end, owner, n - #out)
    if id then
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
      befores[#out + 1] = #empties
      out[#out + 1] = id
      attempts[#out] = a
      tds[#out] = fields
    else
      empty[best[1]] = true
      empties[#empties + 1] = best[1]
    end
  end
  settle()
  if #leased > 0 then
    -- The owner's tasks are held while it lives: its lease, pushed on by each call and
    -- heartbeat (`RESCUE` puts back the tasks of an owner whose lease ran out).
    chunked('SADD', held(owner), leased)
    redis.call('ZADD', OWNERS, 'GT', lease_end, owner)
  end
  return {empties, befores, out, attempts, tds}
end
"#;

/// `finish(now, first, k)`: the `k` tasks given as (id, outcome, error) from ARGV[first]:
/// active → done (completed, skipped) or dead; returns how many were active.
const FINISH_FN: &str = r#"
local function finish(now, first, k)
  if k == 0 then return 0 end
  -- An ended task's state per outcome and attempt (made once per call); the ids finished (an id
  -- given twice is finished once).
  local ENDED_AS, seen = {}, {}
  local ids = {}
  for j = 0, k - 1 do ids[#ids + 1] = ARGV[first + 3 * j] end
  local st = column(TS, ids)
  local fields = column(TD, ids)
  local n = 0
  for j, id in ipairs(ids) do
    local a, w = string.match(st[j] or '', '^active\255(%d*)\255([^\255]*)')
    if a and not seen[id] then
      seen[id] = true
      local outcome, err = ARGV[first + 3 * (j - 1) + 1], ARGV[first + 3 * (j - 1) + 2]
      local x, job, q, t = string.match(fields[j] or '',
        '^([^\255]*)\255([^\255]*)\255[^\255]*\255[^\255]*\255[^\255]*\255([^\255]*)\255([^\255]*)')
      job, q, t = job or '', q or '', t or ''
      gather(UNHELD, w, id)
      if x == '1' then redis.call('HINCRBY', K.jobactive, job, -1) end
      gather(SREM, job, id)
      local to = 'dead'
      if outcome == 'completed' or outcome == 'skipped' then to = 'done' end
      local ends = ENDED_AS[outcome]
      if not ends then ends = {}; ENDED_AS[outcome] = ends end
      local v = ends[a]
      if not v then
        v = to .. S .. a .. S .. outcome .. S .. now
        ends[a] = v
      end
      STATES[#STATES + 1] = id
      STATES[#STATES + 1] = v
      if err ~= '' then
        ERRORS[#ERRORS + 1] = id
        ERRORS[#ERRORS + 1] = err
      else
        CLEARED[#CLEARED + 1] = id
      end
      ENDS[#ENDS + 1] = id
      ENDS_AT = now
      add(q, t, 'active', -1)
      if to == 'done' then add(q, t, 'completed', 1) elseif outcome ~= 'cancelled' then add(q, t, 'failed', 1) end
      n = n + 1
    end
  end
  -- What a claim after this reads, written.
  flush_columns()
  return n
end
"#;

/// `heartbeat(now, lease, owner, ids...)`: pushes the owner's lease on (every task it holds
/// with it), and puts back the tasks it holds that are not among `ids` (the tasks the caller
/// knows it holds) and were leased more than two leases and 10 s ago: tasks it lost track of (a
/// lease call whose answer never came, a put-back that failed), whose lease would have run out;
/// the margin keeps a lease call whose answer is on its way from being taken for lost. Returns
/// how many of `ids` it holds.
const HEARTBEAT: &str = r#"
local now, lease, owner = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
redis.call('ZADD', OWNERS, 'GT', now + lease, owner)
local known = {}
for i = 5, #ARGV do known[ARGV[i]] = true end
local n = 0
local ids = redis.call('SMEMBERS', held(owner))
local st = column(TS, ids)
for j, id in ipairs(ids) do
  local v = st[j]
  local s, _, w = unstate(v)
  if s == 'active' and w == owner then
    if known[id] then
      n = n + 1
    else
      -- A lease and then some: a lease call whose answer is on its way (the caller has not
      -- counted its tasks yet) is never taken for lost.
      local at = tonumber(string.match(v, '^[^\255]*\255[^\255]*\255[^\255]*\255(%d+)') or 0)
      if at < now - 2 * lease - 10000 then put_back(id, 'RPUSH') end
    end
  end
end
return n
"#;

/// Active → pending later: a retry (ARGV[5] = '0') or a deferral that gives the attempt back
/// (ARGV[5] = '1').
const LATER: &str = r#"
local id, runafter, err, giveback = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local p, a = take_active(id)
if not p then return 0 end
if giveback == '1' then a = tostring((tonumber(a) or 1) - 1) end
set_state(id, 'pending', a, '')
p[9] = runafter
redis.call('HSET', TD, id, table.concat(p, S))
if err ~= '' then redis.call('HSET', TE, id, err) end
redis.call('ZADD', P .. 'delayed', runafter, id)
cnt(p[6], p[7], 'scheduled', 1)
return 1
"#;

/// Active → pending now, attempt given back (shutdown).
const RELEASE: &str = r#"
if put_back(ARGV[2], 'LPUSH') then return 1 end
return 0
"#;

const REQUEUE_DEAD: &str = r#"
local id = ARGV[2]
local s, _, outcome = state(id)
if s ~= 'dead' then return 0 end
local p = td(id)
local q, t = p[6], p[7]
if outcome ~= 'cancelled' then cnt(q, t, 'failed', -1) end
set_state(id, 'pending', '0', '')
p[3], p[9] = 'retry', ARGV[3]
redis.call('HSET', TD, id, table.concat(p, S))
redis.call('SADD', P .. 'jobtasks:' .. p[2], id)
ready('RPUSH', q, t, id)
cnt(q, t, 'pending', 1)
return 1
"#;

const CANCEL_PENDING: &str = r#"
local id, err = ARGV[2], ARGV[3]
local s, a = state(id)
if s ~= 'pending' then return 0 end
local p = td(id)
local q, t = p[6], p[7]
if redis.call('ZREM', P .. 'delayed', id) == 1 then
  cnt(q, t, 'scheduled', -1)
else
  redis.call('LREM', P .. 'lane:' .. q .. ':' .. t, 0, id)
  cnt(q, t, 'pending', -1)
end
redis.call('SREM', P .. 'jobtasks:' .. p[2], id)
local at = now_ms()
set_state(id, 'dead', a, 'cancelled' .. S .. at)
redis.call('HSET', TE, id, err)
ended(id, at)
return 1
"#;

/// `busy_besides(job, id, fire)`: 1 when the job has a pending or active task other than `id`
/// that is not of a fire later than `fire` (fires are RFC 3339 texts of one width: they compare
/// as strings).
const BUSY_BESIDES: &str = r#"
local job, me, fire = ARGV[2], ARGV[3], ARGV[4]
for _, id in ipairs(redis.call('SMEMBERS', P .. 'jobtasks:' .. job)) do
  if id ~= me then
    local s = state(id)
    if s == 'pending' or s == 'active' then
      local f = td(id)[4]
      if f == '' or f < fire then return 1 end
    end
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
  local s = state(id)
  local p = td(id)
  local f, q, t = p[4], p[6], p[7]
  if s == 'pending' and f ~= '' and f > after then
    if redis.call('ZREM', P .. 'delayed', id) == 1 then
      cnt(q, t, 'scheduled', -1)
    else
      redis.call('LREM', P .. 'lane:' .. q .. ':' .. t, 0, id)
      cnt(q, t, 'pending', -1)
    end
    redis.call('SREM', P .. 'jobtasks:' .. job, id)
    redis.call('HDEL', TD, id)
    redis.call('HDEL', TS, id)
    redis.call('HDEL', TE, id)
    redis.call('DEL', P .. 'fire:' .. job .. ':' .. f)
    n = n + 1
  end
end
return n
"#;

/// `rescue(now)`: puts back the tasks held by owners whose lease ran out (their process died
/// or lost Redis); returns how many.
const RESCUE: &str = r#"
local now = tonumber(ARGV[2])
local n = 0
for _, owner in ipairs(redis.call('ZRANGEBYSCORE', OWNERS, '-inf', now, 'LIMIT', 0, 100)) do
  local key = held(owner)
  for _, id in ipairs(redis.call('SMEMBERS', key)) do
    local s, _, w = state(id)
    if s == 'active' and w == owner and put_back(id, 'RPUSH') then n = n + 1 end
  end
  redis.call('DEL', key)
  redis.call('ZREM', OWNERS, owner)
end
return n
"#;

/// `forget(before)`: forgets up to 1000 of the tasks that ended before `before` (ms), from the
/// oldest hour's bucket whose tasks all did (a task that ran again since and is not ended, or
/// ended later, is not forgotten); returns -1 when no bucket is that old, else how many it
/// looked at.
const FORGET: &str = r#"
local before = tonumber(ARGV[2])
local hours = redis.call('ZRANGEBYSCORE', P .. 'endedhours', '-inf', math.floor(before / HOUR) - 1,
  'LIMIT', 0, 1)
if #hours == 0 then return -1 end
local key = P .. 'ended:' .. hours[1]
local old = redis.call('LPOP', key, 1000)
if not old or #old < 1000 then redis.call('ZREM', P .. 'endedhours', hours[1]) end
if not old then return 0 end
local gone = {}
local st = redis.call('HMGET', TS, unpack(old))
for j, id in ipairs(old) do
  local v = st[j]
  local s = unstate(v)
  if not s then
    gone[#gone + 1] = id
  elseif s == 'done' or s == 'dead' then
    local at = string.match(v, '^[^\255]*\255[^\255]*\255[^\255]*\255(%d+)')
    if not at or tonumber(at) <= before then gone[#gone + 1] = id end
  end
end
if #gone > 0 then
  redis.call('HDEL', TD, unpack(gone))
  redis.call('HDEL', TS, unpack(gone))
  redis.call('HDEL', TE, unpack(gone))
end
return #old
"#;

/// The most `FORGET` calls (of up to 1000 tasks each) one [`QueueBackend::rescue_expired`]
/// makes: a Redis that ended more tasks than that a tick, 7 days ago, is caught up with over the
/// next ticks.
const FORGET_CALLS: usize = 50;

/// `upgrade(key)`: moves the ids of an older `ready:{queue}` list into their lanes, in order
/// (their tasks in hashes of their own, as this runs before `COLUMNS`, or in the columns).
const UPGRADE: &str = r#"
local key = ARGV[2]
local ids = redis.call('LRANGE', key, 0, -1)
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', P .. 'task:' .. id, 'q', 't', 's')
  if not f[1] then
    -- Moved into the columns already (or written there).
    local p = td(id)
    f = {p[6], p[7], state(id)}
  end
  if f[1] and f[1] ~= '' and f[3] == 'pending' then ready('RPUSH', f[1], f[2], id) end
end
redis.call('DEL', key)
return #ids
"#;

/// `columns(now, keys...)`: moves tasks of the older layout (a hash `task:{id}` each, its name,
/// most attempts and input either packed in `d` or as fields `n`, `m`, `in`; leases in one
/// sorted set `active`) into the columns; an ended one keeps the time it has left, an active
/// one its lease (as its owner's). Returns how many were moved.
const COLUMNS: &str = r#"
local now = tonumber(ARGV[2])
local n = 0
for i = 3, #ARGV do
  local h = ARGV[i]
  local all = redis.call('HGETALL', h)
  if #all > 0 then
    local m = {}
    for j = 1, #all, 2 do m[all[j]] = all[j + 1] end
    local id = string.sub(h, #P + 6)
    local d = m.d
    if not d then d = table.concat({m.n or '', m.m or '1', m['in'] or ''}, S) end
    redis.call('HSET', TD, id, table.concat({m.x or '0', m.j or '', m.tr or '', m.f or '',
      m.v or '', m.q or '', m.t or '', m.c or '', m.ra or '', d}, S))
    local s = m.s or 'pending'
    local third = m.o or ''
    if s == 'active' then third = m.w or '' elseif s == 'pending' then third = '' end
    -- A task done has no error (a completed one kept an earlier attempt's; a skipped one its
    -- reason).
    if m.e and m.e ~= '' and not (s == 'done' and m.o == 'completed') then
      redis.call('HSET', TE, id, m.e)
    end
    if s == 'done' or s == 'dead' then
      local left = redis.call('PTTL', h)
      if left < 0 then left = 0 end
      local at = now - (604800000 - left)
      third = third .. S .. at
      ended(id, at)
    elseif s == 'active' then
      -- Held by its owner until the latest lease of the owner's tasks runs out.
      local lease = tonumber(redis.call('ZSCORE', P .. 'active', id) or now)
      redis.call('ZADD', OWNERS, 'GT', lease, third)
      redis.call('SADD', held(third), id)
      redis.call('ZREM', P .. 'active', id)
      third = third .. S .. now
    end
    set_state(id, s, m.a or '0', third)
    redis.call('DEL', h)
    n = n + 1
  end
end
return n
"#;

struct Scripts {
    upgrade: Script,
    columns: Script,
    enqueue: Script,
    finish_claim: Script,
    heartbeat: Script,
    finish: Script,
    later: Script,
    release: Script,
    requeue_dead: Script,
    cancel_pending: Script,
    rescue: Script,
    forget: Script,
    busy_besides: Script,
    drop_fires_after: Script,
}

fn scripts() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| {
        let s = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        // ARGV[2] = now, ARGV[3] = k finishes, then k (id, outcome, error).
        let finish = "local r = finish(ARGV[2], 4, tonumber(ARGV[3]))\n\
            flush()\n\
            return r";
        // ARGV[2] = k finishes, then k (id, outcome, error), then the claim's arguments (its
        // first, now, is the time the finished tasks ended).
        let finish_claim = "local k = tonumber(ARGV[2])\n\
            local i = 3 + 3 * k\n\
            finish(ARGV[i], 3, k)\n\
            local r = claim(tonumber(ARGV[i]), tonumber(ARGV[i + 1]), ARGV[i + 2], i + 3)\n\
            flush()\n\
            return r";
        Scripts {
            upgrade: s(UPGRADE),
            columns: s(COLUMNS),
            enqueue: s(&format!("{BATCH_FN}{ENQUEUE}")),
            finish_claim: s(&format!("{BATCH_FN}{FINISH_FN}{CLAIM_FN}{finish_claim}")),
            heartbeat: s(&format!("{BATCH_FN}{HEARTBEAT}")),
            finish: s(&format!("{BATCH_FN}{FINISH_FN}{finish}")),
            later: s(LATER),
            release: s(RELEASE),
            requeue_dead: s(REQUEUE_DEAD),
            cancel_pending: s(CANCEL_PENDING),
            rescue: s(RESCUE),
            forget: s(FORGET),
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

/// What the claim script returns (see `CLAIM_FN`): the queues found empty, and per leased task
/// how many of those before it, its id, attempt and `td`.
type ClaimReply = (
    Vec<String>,
    Vec<usize>,
    Vec<String>,
    Vec<String>,
    Vec<Vec<u8>>,
);

fn claimed(reply: ClaimReply) -> anyhow::Result<Claimed> {
    let (empties, befores, ids, attempts, tds) = reply;
    anyhow::ensure!(
        [befores.len(), attempts.len(), tds.len()] == [ids.len(); 3],
        "redis queue: a lease's reply is short"
    );
    let tasks = ids
        .iter()
        .zip(befores)
        .zip(attempts)
        .zip(tds)
        .map(|(((id, before), attempt), td)| {
            let task = Fields::of(&td)?.task(Uuid::parse_str(id)?, attempt.parse().unwrap_or(1));
            Ok(Leased {
                before,
                queue: task.queue.clone(),
                task,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(Claimed { empties, tasks })
}

/// A task's `td`: what its request says (the module's doc).
struct Fields([String; 12]);

impl Fields {
    fn of(td: &[u8]) -> anyhow::Result<Fields> {
        let mut parts = td.splitn(12, |b| *b == 0xFF);
        let mut fields: [String; 12] = Default::default();
        for f in &mut fields {
            *f = String::from_utf8(parts.next().unwrap_or_default().to_vec())?;
        }
        Ok(Fields(fields))
    }

    fn version(&self) -> Option<i64> {
        self.0[4].parse().ok()
    }

    fn time(&self, i: usize) -> Option<DateTime<Utc>> {
        self.0[i]
            .parse::<i64>()
            .ok()
            .and_then(DateTime::from_timestamp_millis)
    }

    fn task(self, id: Uuid, attempt: i64) -> Task {
        let [_, job_id, trigger, fire, _, queue, tenant, _, _, job_name, max_attempts, input] =
            &self.0;
        Task {
            id,
            tenant: tenant.clone(),
            job_id: job_id.clone(),
            job_name: job_name.clone(),
            job_version: self.version(),
            queue: queue.clone(),
            trigger: trigger.clone(),
            input: input.clone(),
            fire_at: DateTime::parse_from_rfc3339(fire)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            attempt,
            max_attempts: max_attempts.parse().unwrap_or(1),
        }
    }
}

/// The job's name, the most attempts and the input as the last three fields of a `td`.
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

    /// Moves the tasks of the older layouts into this one, once per Redis (`layout` records
    /// it): the runnable tasks of one `ready:{queue}` list per queue (before tenants took turns)
    /// into their tenants' lanes, then the tasks of a hash `task:{id}` each into the columns.
    async fn upgrade_layout(&self) -> anyhow::Result<()> {
        let mut con = self.con.clone();
        let layout = format!("{}layout", self.prefix);
        let done: Option<String> = redis::cmd("GET")
            .arg(&layout)
            .query_async(&mut con)
            .await
            .map_err(failed)?;
        if done.as_deref() == Some("columns") {
            return Ok(());
        }
        if done.as_deref() != Some("lanes") {
            let pattern = format!("{}ready:*", glob_escape(&self.prefix));
            let mut cursor = 0;
            loop {
                let (next, keys) = self.scan(cursor, &pattern).await?;
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
                match next {
                    0 => break,
                    next => cursor = next,
                }
            }
        }
        let pattern = format!("{}task:*", glob_escape(&self.prefix));
        let (mut cursor, mut moved) = (0, 0);
        loop {
            let (next, keys) = self.scan(cursor, &pattern).await?;
            if !keys.is_empty() {
                let n: i64 = scripts()
                    .columns
                    .arg(&self.prefix)
                    .arg(ms(Utc::now()))
                    .arg(&keys)
                    .invoke_async(&mut con)
                    .await
                    .map_err(failed)?;
                moved += n;
            }
            match next {
                0 => break,
                next => cursor = next,
            }
        }
        if moved > 0 {
            tracing::info!(moved, "redis queue: tasks moved into the task columns");
        }
        // The leases of the older layout, moved with their tasks (an id left has no task).
        let _: () = redis::cmd("DEL")
            .arg(format!("{}active", self.prefix))
            .query_async(&mut con)
            .await
            .map_err(failed)?;
        let _: () = redis::cmd("SET")
            .arg(&layout)
            .arg("columns")
            .query_async(&mut con)
            .await
            .map_err(failed)?;
        Ok(())
    }

    /// One page of the keys that match `pattern` from `cursor` (`SCAN`, not `KEYS`, so a large
    /// Redis is not blocked): the next cursor (0 at the end) and the keys.
    async fn scan(&self, cursor: u64, pattern: &str) -> anyhow::Result<(u64, Vec<String>)> {
        redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut self.con.clone())
            .await
            .map_err(failed)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Deletes every key under this queue's prefix (`codeai bench` and tests clean up with it):
    /// SCAN, not KEYS, so a large Redis is not blocked.
    pub async fn forget_all(&self) -> anyhow::Result<u64> {
        let pattern = format!("{}*", glob_escape(&self.prefix));
        let (mut cursor, mut deleted) = (0, 0);
        loop {
            let (next, keys) = self.scan(cursor, &pattern).await?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("DEL")
                    .arg(&keys)
                    .query_async(&mut self.con.clone())
                    .await
                    .map_err(failed)?;
                deleted += n;
            }
            match next {
                0 => return Ok(deleted),
                next => cursor = next,
            }
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
        let args = vec![
            ms(Utc::now()).to_string(),
            "1".to_string(),
            done.id.to_string(),
            done.outcome.to_string(),
            error,
        ];
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
        // Tasks that ended more than 7 days ago are forgotten.
        let before = (ms(now) - KEEP_ENDED_MS).to_string();
        for _ in 0..FORGET_CALLS {
            if self.run(&scripts().forget, vec![before.clone()]).await? < 0 {
                break;
            }
        }
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
        let mut con = self.con.clone();
        let fields: Vec<Option<Vec<u8>>> = redis::cmd("HMGET")
            .arg(format!("{}td", self.prefix))
            .arg(&ids)
            .query_async(&mut con)
            .await
            .map_err(failed)?;
        // A task without a version runs version 1 (as the worker does); a task gone since the
        // SMEMBERS is a task forgotten meanwhile.
        Ok(fields
            .into_iter()
            .flatten()
            .map(|td| Fields::of(&td).map(|f| f.version().unwrap_or(1)))
            .collect::<anyhow::Result<_>>()?)
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
        let column = |name: &str| {
            let mut cmd = redis::cmd("HGET");
            cmd.arg(format!("{}{name}", self.prefix))
                .arg(id.to_string());
            cmd
        };
        let mut con = self.con.clone();
        let (td, ts, te): (Option<Vec<u8>>, Option<Vec<u8>>, Option<String>) = redis::pipe()
            .add_command(column("td"))
            .add_command(column("ts"))
            .add_command(column("te"))
            .query_async(&mut con)
            .await
            .map_err(failed)?;
        let (Some(td), Some(ts)) = (td, ts) else {
            return Ok(None);
        };
        // State, attempts, owner or outcome (then, once ended, when).
        let mut st = ts.splitn(4, |b| *b == 0xFF);
        let mut next = || String::from_utf8_lossy(st.next().unwrap_or_default()).into_owned();
        let (state, attempt, third) = (next(), next(), next());
        let fields = Fields::of(&td)?;
        let (run_after, created_at) = (fields.time(8), fields.time(7));
        let ended = state == "done" || state == "dead";
        let last_error = te.filter(|e| !e.is_empty());
        Ok(Some(TaskInfo {
            task: fields.task(id, attempt.parse().unwrap_or(0)),
            outcome: Some(third).filter(|o| ended && !o.is_empty()),
            state,
            last_error,
            run_after,
            created_at,
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
