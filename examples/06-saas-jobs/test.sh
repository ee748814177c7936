#!/usr/bin/env bash
# Runs example 06's jobs one after the other against a running host and prints what each did.
#
#   python3 examples/06-saas-jobs/fake_billing.py 8099 &
#   CODEAI_OPERATOR_EGRESS_ALLOW=127.0.0.1/32 BILLING_API_URL=http://127.0.0.1:8099 \
#     BILLING_API_KEY=demo-key codeai host run examples/06-saas-jobs/saas-jobs.codeai
#   CODEAI_TOKEN=<admin-token> bash examples/06-saas-jobs/test.sh
#
# BASE_URL defaults to http://localhost:8080. Each run prints its status, its log and its output.
set -euo pipefail

BASE_URL="${BASE_URL:-http://localhost:8080}"
TOKEN="${CODEAI_TOKEN:?set CODEAI_TOKEN to the admin token printed by codeai host run}"

api() {
  local method=$1 path=$2 body=${3:-}
  if [ -n "$body" ]; then
    curl -sS -X "$method" "$BASE_URL$path" -H "Authorization: Bearer $TOKEN" \
      -H "Content-Type: application/json" -d "$body"
  else
    curl -sS -X "$method" "$BASE_URL$path" -H "Authorization: Bearer $TOKEN"
  fi
}

# run JOB INPUT: triggers the job, waits for its execution to end, prints status, log and output.
run() {
  local job=$1 input=$2
  echo "### $job $input"
  local id
  id=$(api POST "/jobs/$job/run" "{\"input\": $input}" | python3 -c '
import json, sys
answer = json.load(sys.stdin)
if "id" not in answer:
    sys.exit("refused: %s" % json.dumps(answer))
print(answer["id"])')
  for _ in $(seq 1 300); do
    local status
    status=$(api GET "/executions/$id" | python3 -c 'import json, sys; print(json.load(sys.stdin)["status"])')
    case "$status" in pending|running|retrying) sleep 0.2 ;; *) break ;; esac
  done
  api GET "/executions/$id" | python3 -c '
import json, sys
e = json.load(sys.stdin)
print("status:", e["status"], ("(" + e["error"] + ")") if e.get("error") else "")
for line in e.get("log") or []:
    print("  log:", line["message"])
print("  output:", json.dumps(e.get("output")))'
  echo
}

run SignUp '{"email": "ann@example.com", "trial_days": -1}'
run SignUp '{"email": "bo@example.com", "plan": "free", "trial_days": -2}'
run SignUp '{"email": "cy@example.com"}'
echo "### a sign-up without an email is refused before anything runs"
api POST /jobs/SignUp/run '{"input": {"plan": "pro"}}'
echo; echo
run ExpireTrials '{}'
run SyncInvoices '{}'
run SyncInvoices '{}'
run RevenueDigest '{}'
echo "### the mail held in the outbox (no SMTP server configured)"
api GET /outbox | python3 -c '
import json, sys
for m in json.load(sys.stdin)["data"]:
    print(" ", m["recipient"], "-", m["subject"])'
