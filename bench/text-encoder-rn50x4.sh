#!/usr/bin/env bash
# Benchmark (not a test): CLIP's text encoder on the RN50x4 configuration with random weights, batch 64
# at 8 and at 77 tokens: PyTorch eager (our tools/export definition, Debian torch, 2 threads) against
# onnxruntime on the exported text.onnx, with each graph optimisation level and 1 or 2 threads.
# Writes bench/results/text-encoder-rn50x4.md. The random checkpoint and its export are kept in
# $WORK (default /tmp/mmn-rn50x4) and reused by later runs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
WORK=${WORK:-/tmp/mmn-rn50x4}
mkdir -p "$WORK"
[ -f "$WORK/rn50x4.pt" ] || $PY -m tools.export.make_tiny "$WORK/rn50x4.pt" --seed 0 --config RN50x4
[ -f "$WORK/model/clip.json" ] || $PY -m tools.export.export_clip "$WORK/rn50x4.pt" "$WORK/model" \
  --vocab ../shared/clip/bpe_simple_vocab_16e6.txt.gz
torch_json=$(OMP_NUM_THREADS=2 $PY -m bench.torch_text "$WORK/rn50x4.pt" --threads 2)
ort_json=$(npx tsx bench/ort-text.ts "$WORK/model")
TORCH_JSON="$torch_json" ORT_JSON="$ort_json" node -e '
const torch = JSON.parse(process.env.TORCH_JSON), ortRuns = JSON.parse(process.env.ORT_JSON);
const lines = ["# Text encoder: onnxruntime vs PyTorch eager (RN50x4 configuration, random weights)", "",
  `Run ${new Date().toISOString()}; batch ${ortRuns.batch}; PyTorch ${torch.torch} eager with ${torch.threads} threads; onnxruntime-node CPU provider; 2 shared cores.`, "",
  "| tokens | PyTorch rows/s | ORT all, 2 threads rows/s | ratio (goal ≥ 1.5) |", "|---|---|---|---|"];
for (const length of ["8", "77"]) {
  const t = torch.results[length].rows_per_s;
  const o = ortRuns.results.find((r) => r.level === "all" && r.threads === 2 && String(r.length) === length).rowsPerSecond;
  lines.push(`| ${length} | ${t.toFixed(1)} | ${o.toFixed(1)} | ${(o / t).toFixed(2)} |`);
}
lines.push("", "What the session options contribute (rows/s):", "", "| optimisation level | threads | 8 tokens | 77 tokens |", "|---|---|---|---|");
for (const level of ["disabled", "basic", "all"]) for (const threads of [1, 2]) {
  const at = (length) => ortRuns.results.find((r) => r.level === level && r.threads === threads && r.length === length).rowsPerSecond.toFixed(1);
  lines.push(`| ${level} | ${threads} | ${at(8)} | ${at(77)} |`);
}
lines.push("", "Padding to the real length instead of 77 is the largest single gain: compare the two columns.", "");
require("fs").writeFileSync("bench/results/text-encoder-rn50x4.md", lines.join("\n"));
console.log(lines.join("\n"));
'
