#!/usr/bin/env bash
# Benchmark (not a test): the server CPU per cached POST /v1/attribution/text of two checkouts of the
# service, side by side in one run (the before and after of a change on the cached path). Each
# checkout (a folder with src/, package.json, tsconfig.json and links to node_modules and models) runs
# as its own server on MODEL_DIR, in turn, ROUNDS times: autocannon (concurrency 32, its own process)
# for WARM s not counted, then DUR s counted; the server's CPU time (/proc/<pid>/stat) over the
# requests answered, the rate and the p99.
#
#   bash bench/http-cached-ab.sh BEFORE_DIR AFTER_DIR MODEL_DIR [ROUNDS]     (WARM=8 DUR=10)
set -u
BEFORE=$1 AFTER=$2 MODEL=$3 ROUNDS=${4:-2}
cd "$(dirname "$0")/.."
AC=$PWD/node_modules/autocannon/autocannon.js
B='{"texts":["yellow"],"topK":10}'
DATA=$(mktemp -d /tmp/bench-http-ab.XXXXXX)
trap 'rm -rf "$DATA"' EXIT
measure() { # ROOT LABEL
  local port=$((20000 + RANDOM % 20000))
  (cd "$1" && exec env PORT=$port HOST=127.0.0.1 MODEL_DIR="$MODEL" REDIS_URL= DATA_DIR="$DATA" WARM_DEFAULT_FIT=false \
    WORD_INDEX_AUTOBUILD=false COLLECTION_PROBE=false LOG_LEVEL=warn ORT_PROVIDERS=cpu RATE_LIMIT_PER_MINUTE=10000000 \
    node --import tsx src/bin/server.ts >"$DATA/$2.log" 2>&1) &
  local pid=$!
  for _ in $(seq 180); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 1; done
  node "$AC" -c 32 -d "${WARM:-8}" -m POST -H content-type=application/json -b "$B" "http://127.0.0.1:$port/v1/attribution/text" >/dev/null 2>&1
  local c0 c1
  c0=$(awk '{print $14+$15}' /proc/$pid/stat)
  node "$AC" -c 32 -d "${DUR:-10}" --json -m POST -H content-type=application/json -b "$B" "http://127.0.0.1:$port/v1/attribution/text" 2>/dev/null >"$DATA/$2.json"
  c1=$(awk '{print $14+$15}' /proc/$pid/stat)
  node -e "const r=require('$DATA/$2.json'); console.log('| $2 | '+(($c1-$c0)*10/r.requests.total).toFixed(3)+' ms | '+r.requests.average.toFixed(0)+' req/s | '+r.latency.p99+' ms | '+(r.non2xx+r.errors)+' | $(cut -d' ' -f1 /proc/loadavg) |')"
  kill -TERM $pid
  wait $pid 2>/dev/null
}
echo "| server | CPU per request | throughput | p99 | errors | load (1 min) |"
echo "|---|---|---|---|---|---|"
for i in $(seq "$ROUNDS"); do
  measure "$BEFORE" "before $i"
  measure "$AFTER" "after $i"
done
