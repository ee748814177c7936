#!/usr/bin/env bash
# The spec's sample requests against a running CodeAI Jobs host.
#
#   codeai host run examples/05-scheduled-jobs/scheduled-jobs.codeai    # prints the admin token
#   CODEAI_TOKEN=<admin-token> bash examples/05-scheduled-jobs/test.sh
#
# BASE_URL defaults to http://localhost:8080. Each request prints its HTTP status and body.
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
