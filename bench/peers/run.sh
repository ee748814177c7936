#!/usr/bin/env bash
# Peer job queues (BullMQ, RQ) running no-op jobs on the local Redis; see README.md.
# Env: PEER_JOBS (20000), PEER_CONCURRENCY (10), PEER_REDIS (redis://127.0.0.1:6379),
#      PEER_FIRE_JOBS (10000: jobs due at one instant, BullMQ delayed jobs vs `codeai bench fire`),
#      CODEAI_CMD (optional command run after the peers; its output is passed through),
#      CODEAI_FIRE_CMD (the same for the fire comparison; `skip` leaves either out).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
jobs="${PEER_JOBS:-20000}"
conc="${PEER_CONCURRENCY:-10}"
redis="${PEER_REDIS:-redis://127.0.0.1:6379}"
export PEER_JOBS="$jobs" PEER_CONCURRENCY="$conc"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

step() { echo "[peers] $*" >&2; }

# --- installs, from the registries, into the temp folder only ---
t0=$SECONDS
mkdir "$tmp/node"
(cd "$tmp/node" && npm init -y >/dev/null && npm install --no-audit --no-fund --loglevel=error bullmq ioredis >&2)
cp "$here/bullmq.mjs" "$here/bullmq_delayed.mjs" "$tmp/node/"   # ESM resolves `bullmq` next to the script
step "npm install bullmq ioredis: $((SECONDS - t0)) s"

t0=$SECONDS
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet rq >&2
step "pip install rq: $((SECONDS - t0)) s"

# --- runs: each peer flushes only its own Redis DB (5: BullMQ, 6: RQ) ---
step "bullmq: $jobs jobs, concurrency $conc"
node "$tmp/node/bullmq.mjs" "$redis/5" "$jobs" "$conc"

fire_jobs="${PEER_FIRE_JOBS:-10000}"
step "bullmq delayed: $fire_jobs jobs due at one instant, concurrency $conc"
node "$tmp/node/bullmq_delayed.mjs" "$redis/5" "$fire_jobs" "$conc"

step "rq: $jobs jobs, $conc SimpleWorker processes"
PYTHONPATH="$here" "$tmp/venv/bin/python" "$here/rq_bench.py" "$redis/6" "$jobs" "$conc"

# CodeAI Jobs' own side: `codeai bench throughput` (release build) on PostgreSQL (DATABASE_URL if it
# names one, else 127.0.0.1) + this Redis (DB 7, under a key prefix of its own it removes), one line.
# CODEAI_CMD replaces it; CODEAI_CMD=skip leaves it out.
# The URLs go through the environment, not the command's text, which is printed.
root="$(cd "$here/../.." && pwd)"
CODEAI_PG="${DATABASE_URL:-}"
[[ "$CODEAI_PG" == postgres* ]] || CODEAI_PG="postgres://postgres@127.0.0.1:5432/test"
export CODEAI_PG CODEAI_REDIS="$redis/7"
# A failure prints the command's stderr and stops the script (`paste` alone would hide it).
default="set -o pipefail; cd '$root' && DATABASE_URL=\"\$CODEAI_PG\" REDIS_URL=\"\$CODEAI_REDIS\" cargo run -q --release -p codeai-host --bin codeai -- bench throughput --jobs $jobs --concurrency $conc 2>'$tmp/codeai.err' | paste -sd' ' || { cat '$tmp/codeai.err' >&2; exit 1; }"
CODEAI_CMD="${CODEAI_CMD:-$default}"
[[ "$CODEAI_CMD" == skip ]] && CODEAI_CMD=""

if [[ -n "${CODEAI_CMD:-}" ]]; then
  step "codeai: $CODEAI_CMD"
  bash -c "$CODEAI_CMD"
fi

# The fire comparison's own side: `codeai bench fire` on the embedded default (a temporary SQLite
# file), release build.
default="set -o pipefail; cd '$root' && env -u DATABASE_URL -u REDIS_URL cargo run -q --release -p codeai-host --bin codeai -- bench fire --jobs $fire_jobs --concurrency $conc 2>'$tmp/codeai-fire.err' | paste -sd' ' || { cat '$tmp/codeai-fire.err' >&2; exit 1; }"
CODEAI_FIRE_CMD="${CODEAI_FIRE_CMD:-$default}"
[[ "$CODEAI_FIRE_CMD" == skip ]] && CODEAI_FIRE_CMD=""
if [[ -n "${CODEAI_FIRE_CMD:-}" ]]; then
  step "codeai fire: $CODEAI_FIRE_CMD"
  bash -c "$CODEAI_FIRE_CMD"
fi
