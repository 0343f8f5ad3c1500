#!/usr/bin/env bash
# Fails when a process started by a test run is still alive after it: every process whose environment
# holds MMN_TEST_RUN=<mark> (the run's children inherit it: test files, the servers, workers and
# redis-servers they start). Run the suite with the mark, then this script with the same mark:
#
#   MMN_TEST_RUN=local-1 npx tap test/jobs-redis.test.ts; bash scripts/check-leftovers.sh local-1
#
# A process on its way out gets a few seconds to go before it counts.
set -euo pipefail
mark=${1:?usage: check-leftovers.sh MARK}

leftovers() {
  local environ pid
  for environ in /proc/[0-9]*/environ; do
    pid=${environ#/proc/}
    pid=${pid%/environ}
    [ "$pid" = "$$" ] || [ "$pid" = "$BASHPID" ] && continue
    # NUL-separated; a process we may not read, or one that is gone, is skipped.
    if { tr '\0' '\n' <"$environ"; } 2>/dev/null | grep -qx "MMN_TEST_RUN=$mark"; then echo "$pid"; fi
  done
}

for _ in $(seq 1 50); do
  pids=$(leftovers)
  [ -z "$pids" ] && { echo "no process of test run $mark is left"; exit 0; }
  sleep 0.1
done
echo "processes started by test run $mark are still alive:" >&2
for pid in $pids; do
  echo "  $pid: $({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null)" >&2
done
listening=$(ss -Htlnp 2>/dev/null | grep -E "pid=($(echo $pids | tr ' ' '|'))," || true)
[ -n "$listening" ] && { echo "listening:" >&2; echo "$listening" >&2; }
exit 1
