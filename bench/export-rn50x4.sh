#!/usr/bin/env bash
# Benchmark (not a test): export a random-weight RN50x4 (C = 2560, D = 640, 288 px, ~180M parameters)
# and check parity at full size. Writes bench/results/export-rn50x4.md.
#
#   bash bench/export-rn50x4.sh          (KEEP=1 keeps the work folder; WORK=dir chooses it)
#
# Heavy: ~1.5 GB of checkpoint and ONNX files, minutes of CPU; runs under nice -n 10.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
WORK=${WORK:-$(mktemp -d /tmp/export-rn50x4.XXXXXX)}
mkdir -p "$WORK"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
OUT=bench/results/export-rn50x4.md
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

seconds() { awk -v now="$(date +%s.%N)" -v start="$1" 'BEGIN { printf "%.1f", now - start }'; }

t0=$(date +%s.%N)
nice -n 10 $PY -m tools.export.make_tiny "$WORK/rn50x4.pt" --seed 0 --config RN50x4
make_s=$(seconds "$t0")

t0=$(date +%s.%N)
nice -n 10 $PY -m tools.export.export_clip "$WORK/rn50x4.pt" "$WORK/model" \
  --vocab ../shared/clip/bpe_simple_vocab_16e6.txt.gz --labels ../shared/reference/rn50x4/neuron-hand-labels.json
export_s=$(seconds "$t0")

t0=$(date +%s.%N)
nice -n 10 $PY -m tools.export.reference "$WORK/rn50x4.pt" "$WORK/reference.json"
reference_s=$(seconds "$t0")

t0=$(date +%s.%N)
status=0
nice -n 10 npx tsx bench/export-parity-rn50x4.ts "$WORK/model" "$WORK/reference.json" >"$WORK/parity.md" || status=$?
parity_s=$(seconds "$t0")

{
  echo "# Export benchmark: random-weight RN50x4"
  echo
  echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores (shared), $(uname -m), torch $($PY -c 'import torch; print(torch.__version__)'),"
  echo "onnx $($PY -c 'import onnx; print(onnx.__version__)'), onnxruntime-node $(node -p "require('onnxruntime-node/package.json').version"); OMP_NUM_THREADS=$OMP_NUM_THREADS, nice -n 10."
  echo "Load average before / after: $load_before / $(cut -d' ' -f1-3 /proc/loadavg) (the cores are shared: times are indicative)."
  echo "Checkpoint: \`make_tiny.py --config RN50x4 --seed 0\` (float32 state dict, $(du -m "$WORK/rn50x4.pt" | cut -f1) MB). Command: \`bash bench/export-rn50x4.sh\`."
  echo
  echo "| step | seconds |"
  echo "|---|---|"
  printf '| make_tiny.py (random RN50x4) | %.1f |\n' "$make_s"
  printf '| export_clip.py (3 ONNX graphs, checks, hashes) | %.1f |\n' "$export_s"
  printf '| reference.py (PyTorch outputs) | %.1f |\n' "$reference_s"
  printf '| parity in onnxruntime-node (incl. session creation) | %.1f |\n' "$parity_s"
  echo
  echo "| file | bytes |"
  echo "|---|---|"
  for f in "$WORK"/model/*; do echo "| $(basename "$f") | $(stat -c %s "$f") |"; done
  echo
  echo "## Parity (onnxruntime-node vs PyTorch, float32)"
  echo
  cat "$WORK/parity.md"
} >"$OUT"
cat "$OUT"
exit $status
