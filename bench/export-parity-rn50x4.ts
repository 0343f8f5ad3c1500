/**
 * Parity of an exported full-size model directory against reference.py's PyTorch outputs
 * (relative error = max|a - b| / max|b|, and identical top-10 neuron sets of W·t).
 *
 *   npx tsx bench/export-parity-rn50x4.ts MODEL_DIR REFERENCE.json
 *
 * Prints a Markdown table and exits non-zero when any relative error exceeds 1e-4 or a top-10 set
 * differs. Used by bench/export-rn50x4.sh.
 */
import { readFile } from 'node:fs/promises';
import { checkParity, loadSessions, type Reference } from '../test/helpers/tiny-model.js';

const TOLERANCE = 1e-4;

async function main(): Promise<number> {
  const [modelDir, referenceJson] = process.argv.slice(2);
  if (!modelDir || !referenceJson) {
    console.error('usage: export-parity-rn50x4.ts MODEL_DIR REFERENCE.json');
    return 2;
  }
  const reference = JSON.parse(await readFile(referenceJson, 'utf8')) as Reference;
  const started = performance.now();
  const sessions = await loadSessions(modelDir);
  const loadedMs = performance.now() - started;
  const report = await checkParity(sessions, reference);
  const runMs = performance.now() - started - loadedMs;
  const errors = Object.entries(report.relativeErrors);
  const worst = Math.max(...errors.map(([, value]) => value));
  const passed = worst <= TOLERANCE && report.top10Mismatches === 0;
  console.log('| output | relative error |');
  console.log('|---|---|');
  for (const [name, value] of errors) console.log(`| ${name} | ${value.toExponential(2)} |`);
  console.log(
    `| top-10 sets differing (of ${2 * reference.token_rows.length}) | ${report.top10Mismatches} |`,
  );
  console.log(`| smallest 10th-11th margin in the reference | ${report.minTop10Margin.toExponential(2)} |`);
  console.log('');
  console.log(
    `onnxruntime-node: sessions created in ${(loadedMs / 1000).toFixed(1)} s; ` +
      `parity inputs (${reference.token_rows.length} text rows twice, ${reference.pixel_values.shape[0]} images) ` +
      `ran in ${(runMs / 1000).toFixed(1)} s. Result: **${passed ? 'PASS' : 'FAIL'}** (tolerance ${TOLERANCE}).`,
  );
  return passed ? 0 : 1;
}

process.exitCode = await main();
