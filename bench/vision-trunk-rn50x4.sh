#!/usr/bin/env bash
# Benchmark (not a test): does a change of the exported vision trunk, or of onnxruntime's graph
# optimisation, pay on the RN50x4 configuration with random weights? bench/vision_trunk.py traces the
# trunk as the exporter does, writes the candidate forms and PyTorch's neurons; bench/vision-trunk.ts
# checks each against PyTorch and times them side by side in one process. Writes
# bench/results/vision-trunk-rn50x4.md (or OUT=). The random checkpoint is kept in $WORK (default
# /tmp/mmn-rn50x4-trunk) and reused; FROM=an exported model directory of that checkpoint skips the trace.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
WORK=${WORK:-/tmp/mmn-rn50x4-trunk}
mkdir -p "$WORK"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
OUT=${OUT:-bench/results/vision-trunk-rn50x4.md}
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
CHECKPOINT=${CHECKPOINT:-$WORK/rn50x4.pt}
[ -f "$CHECKPOINT" ] || $PY -m tools.export.make_tiny "$CHECKPOINT" --seed 0 --config RN50x4
$PY -m bench.vision_trunk "$CHECKPOINT" "$WORK" ${FROM:+--from "$FROM"}
npx tsx bench/vision-trunk.ts "$WORK" "$@" >"$WORK/vision-trunk.md"
{
  echo "# Vision trunk: the exported graph vs candidate changes (RN50x4 configuration, random weights)"
  echo
  echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) shared cores, $(uname -m); command: \`bash bench/vision-trunk-rn50x4.sh\`."
  echo "Load average before / after: $load_before / $(cut -d' ' -f1-3 /proc/loadavg) (other processes share the cores: read the CPU-time columns)."
  echo
  cat "$WORK/vision-trunk.md"
} >"$OUT"
cat "$OUT"
