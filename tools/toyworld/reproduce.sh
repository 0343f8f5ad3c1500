#!/usr/bin/env bash
# Reproduce models/toyworld from a seed: BPE -> train -> export -> held-out renders -> evaluate and
# label neurons (seed 7) and measure (seed 8) -> neuron scales (gauge.py) -> probe collection -> model card -> finalize (words.txt, neurons.json, clip.json hashes).
# About 45 minutes on 2 CPU cores. Usage: bash tools/toyworld/reproduce.sh [SEED] [RUN_DIR]
# Env: TOYWORLD_STEPS, TOYWORLD_MINUTES (training budgets), TOYWORLD_OUT (default models/toyworld).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=/usr/bin/python3
SEED="${1:-1}"
RUN="${2:-tmp/toyworld}"
OUT="${TOYWORLD_OUT:-models/toyworld}"
STEPS="${TOYWORLD_STEPS:-5000}"
MINUTES="${TOYWORLD_MINUTES:-40}"
mkdir -p "$RUN"
started=$(date +%s)

echo "== 1. BPE merges from the world's captions"
$PY -m tools.toyworld.bpe "$RUN/bpe_toyworld.txt" --seed "$SEED" --samples 20000

echo "== 2. contrastive training ($STEPS steps or $MINUTES min)"
$PY -m tools.toyworld.train --merges "$RUN/bpe_toyworld.txt" --out "$RUN/run" --seed "$SEED" \
  --steps "$STEPS" --minutes "$MINUTES" --follow-word 0.5 --uniform-attention \
  --sparsity 0.1 --steady-norm 0.1 --centre 0.5 | tee "$RUN/train.log"

echo "== 3. export with the project's exporter (tools/export/export_clip.py, via tools/toyworld/export.py)"
$PY -m tools.toyworld.export "$RUN/run/checkpoint.pt" "$OUT" --name toyworld \
  --vocab "$RUN/bpe_toyworld.txt" --text-graph naive --force

echo "== 4. held-out renders: seed 7 calibrates (neuron labels and scales), seed 8 measures"
rm -rf "$RUN/calibration" "$RUN/heldout"
$PY -m tools.toyworld.heldout --seed 7 --out "$RUN/calibration" --merges "$OUT/bpe_toyworld.txt"
$PY -m tools.toyworld.heldout --seed 8 --out "$RUN/heldout" --merges "$OUT/bpe_toyworld.txt"
$PY -m tools.toyworld.evaluate --checkpoint "$RUN/run/checkpoint.pt" --config "$RUN/run/config.json" \
  --calibration "$RUN/calibration" --heldout "$RUN/heldout" --metrics "$OUT/metrics.json" \
  --neurons "$RUN/neurons.json" --scales "$OUT/neuron_scales.json" --gauged

echo "== 4b. neurons on a common scale (the model computes the same; W's rows follow the scales)"
$PY -m tools.toyworld.gauge "$OUT" --scales "$OUT/neuron_scales.json"

echo "== 4c. the probe collection (held-out renders of every concept, seed 100), hashed by finalize"
$PY -m tools.toyworld.probe "$OUT"

echo "== 5. model card and finalize"
$PY -m tools.toyworld.card "$OUT" --log "$RUN/run/log.json" --config "$RUN/run/config.json" \
  --metrics "$OUT/metrics.json" --seed "$SEED"
$PY -m tools.toyworld.finalize "$OUT" --neurons "$RUN/neurons.json"
echo "reproduced $OUT in $(( $(date +%s) - started )) s"
