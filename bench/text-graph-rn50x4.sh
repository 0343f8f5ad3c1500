#!/usr/bin/env bash
# Benchmark (not a test): the fused text graph (tools/export/text_graph.py, the exporter's default)
# against the naive one traced by torch.onnx (`export_clip.py --text-graph naive`), on the RN50x4
# configuration with random weights: parity of both against PyTorch, then batch 64 at 8 and at 77
# tokens in one process, alternating, medians (bench/text-graphs.ts). Writes
# bench/results/text-graph-rn50x4.md. The random checkpoint is kept in $WORK (default
# /tmp/mmn-rn50x4-graphs) and reused; the two graphs are rewritten each run. THREADS=1 by default;
# OUT= another results file (e.g. for a THREADS=2 run).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
WORK=${WORK:-/tmp/mmn-rn50x4-graphs}
mkdir -p "$WORK"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
OUT=${OUT:-bench/results/text-graph-rn50x4.md}
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
[ -f "$WORK/rn50x4.pt" ] || $PY -m tools.export.make_tiny "$WORK/rn50x4.pt" --seed 0 --config RN50x4
$PY -m bench.text_graphs "$WORK/rn50x4.pt" "$WORK"
status=0
npx tsx bench/text-graphs.ts "$WORK" >"$WORK/text-graphs.md" || status=$?
{
  echo "# Text graph: fused vs naive (RN50x4 configuration, random weights)"
  echo
  echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) shared cores, $(uname -m); command: \`bash bench/text-graph-rn50x4.sh\`."
  echo "Load average before / after: $load_before / $(cut -d' ' -f1-3 /proc/loadavg) (other processes share the cores: read the CPU-time columns)."
  echo "naive: text.onnx as torch.onnx traces tools/export/clip_model.py; fused: tools/export/text_graph.py (the exporter's default)."
  echo
  cat "$WORK/text-graphs.md"
} >"$OUT"
cat "$OUT"
exit $status
