#!/usr/bin/env bash
# The spec's sample requests against a running CodeAI Jobs host.
#
#   codeai host run examples/05-scheduled-jobs/scheduled-jobs.codeai    # prints the admin token
#   CODEAI_TOKEN=<admin-token> bash examples/05-scheduled-jobs/test.sh
#
# BASE_URL defaults to http://localhost:8080. Each request prints its HTTP status and body.
# The job's schedule and paused state are put back as they were at the end (python3 reads them).
set -euo pipefail

BASE_URL="${BASE_URL:-http://localhost:8080}"
TOKEN="${CODEAI_TOKEN:?set CODEAI_TOKEN to the admin token printed by codeai host run}"
JOB="${JOB:-DailySalesReport}"   # the API accepts a job's uuid or its name

req() {
  local method=$1 path=$2 body=${3:-}
  echo "### $method $path"
  if [ -n "$body" ]; then
    curl -sS -X "$method" "$BASE_URL$path" -w '\nHTTP %{http_code}\n' \
      -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" -d "$body"
  else
    curl -sS -X "$method" "$BASE_URL$path" -w '\nHTTP %{http_code}\n' \
      -H "Authorization: Bearer $TOKEN"
  fi
  echo
}

# What the job is before the requests below change it, to put back at the end: the body of a
# PUT /jobs/$JOB/schedule that restores its schedule, and whether it is enabled.
before=$(curl -sS "$BASE_URL/jobs/$JOB" -H "Authorization: Bearer $TOKEN")
read -r enabled restore < <(printf '%s' "$before" | python3 -c '
import json, sys
job = json.load(sys.stdin)
s = job["schedule"]
body = {
    "cron": {"cron_expression": s.get("cron"), "timezone": job.get("timezone") or "UTC"},
    "every": {"every": "%sms" % s.get("every_ms")},
    "once": {"run_at": s.get("run_at")},
}.get(s["kind"])
print(str(job["is_enabled"]).lower(), json.dumps(body) if body else "")
')
put_back() {
  if [ -n "$restore" ]; then
    echo "### putting back the schedule of $JOB"
    req PUT "/jobs/$JOB/schedule" "$restore" >/dev/null
  fi
  if [ "$enabled" = false ]; then
    req POST "/jobs/$JOB/pause" >/dev/null
  fi
}
trap put_back EXIT

# List all jobs
req GET /jobs

# Get job details
req GET "/jobs/$JOB"

# Manually trigger a job
req POST "/jobs/$JOB/run" '{
  "input": {
    "start_date": "2026-01-01",
    "end_date": "2026-01-12"
  }
}'

# Pause and resume a job
req POST "/jobs/$JOB/pause"
req POST "/jobs/$JOB/resume"

# Update a job's schedule
req PUT "/jobs/$JOB/schedule" '{
  "cron_expression": "0 7 * * *",
  "timezone": "America/Los_Angeles"
}'

# Queue status
req GET /queues/status

# List job executions (failed ones)
req GET "/jobs/$JOB/executions?status=failed"

# Execution details, retry and cancel: pass EXECUTION=<execution-id>
if [ -n "${EXECUTION:-}" ]; then
  req GET "/executions/$EXECUTION"
  req POST "/executions/$EXECUTION/retry"
  req POST "/executions/$EXECUTION/cancel"
fi

# Reports and a download URL: pass REPORT=<report-id>
req GET /reports
if [ -n "${REPORT:-}" ]; then
  req GET "/reports/$REPORT"
  req GET "/reports/$REPORT/download"
fi
