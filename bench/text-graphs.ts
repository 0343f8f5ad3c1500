/**
 * The two forms of text.onnx side by side in one process (for bench/text-graph-rn50x4.sh): parity of
 * each against PyTorch, then batch 64 at 8 and at 77 tokens, the graphs run alternately, medians.
 *
 *   npx tsx bench/text-graphs.ts WORK        (WORK holds text-naive.onnx, text-fused.onnx, text-reference.json)
 *
 * Sessions are created as the service creates them (graph optimisation level "all"), on the CPU
 * provider with THREADS intra-op threads (default 1). Each run is timed by the wall clock and by the
 * process's CPU time: with one thread the CPU time counts the graph's work, nearly unaffected by other
 * processes on shared cores, which the wall clock is not. Prints Markdown; exits non-zero when a
 * relative error exceeds 1e-5.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { relativeError } from '../test/helpers/tiny-model.js';

const TOLERANCE = 1e-5;
const FORMS = ['naive', 'fused'] as const;
type Form = (typeof FORMS)[number];

interface Reference {
  vocab_size: number;
  embed_dim: number;
  batches: { length: number; ids: number[][]; text_embeds: number[] }[];
}

const work = process.argv[2];
if (!work) {
  console.error('usage: text-graphs.ts WORK');
  process.exit(2);
}
const threads = Number(process.env.THREADS ?? 1);
const batch = 64;
const repeats: Record<number, number> = {
  8: Number(process.env.REPEATS_8 ?? 9),
  77: Number(process.env.REPEATS_77 ?? 5),
};

const reference = JSON.parse(await readFile(path.join(work, 'text-reference.json'), 'utf8')) as Reference;
const sessions = {} as Record<Form, ort.InferenceSession>;
const createMs = {} as Record<Form, number>;
for (const form of FORMS) {
  const started = performance.now();
  sessions[form] = await ort.InferenceSession.create(path.join(work, `text-${form}.onnx`), {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
  });
  createMs[form] = performance.now() - started;
}

function idsTensor(rows: readonly (readonly number[])[], length: number): ort.Tensor {
  const ids = new BigInt64Array(rows.length * length);
  rows.forEach((row, r) => row.forEach((id, i) => (ids[r * length + i] = BigInt(id))));
  return new ort.Tensor('int64', ids, [rows.length, length]);
}

async function embed(form: Form, input: ort.Tensor): Promise<Float32Array> {
  return (await sessions[form].run({ input_ids: input })).text_embeds.data as Float32Array;
}

// Parity: ragged rows zero-padded to L, as the service sends them.
const parity: { length: number; errors: Record<Form, number>; between: number }[] = [];
for (const { length, ids, text_embeds: want } of reference.batches) {
  const input = idsTensor(ids, length);
  const got = { naive: await embed('naive', input), fused: await embed('fused', input) };
  parity.push({
    length,
    errors: { naive: relativeError(got.naive, want), fused: relativeError(got.fused, want) },
    between: relativeError(got.fused, got.naive),
  });
}

// Timing: 64 rows of L tokens each (<start>, L - 2 ordinary ids, <end>).
const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1];
const timing: { length: number; runs: number; wall: Record<Form, number>; cpu: Record<Form, number> }[] = [];
for (const length of [8, 77]) {
  const rows = Array.from({ length: batch }, (_, r) =>
    Array.from({ length }, (_, i) =>
      i === 0
        ? reference.vocab_size - 2
        : i === length - 1
          ? reference.vocab_size - 1
          : 1 + ((r * 7919 + i * 104729) % (reference.vocab_size - 3)),
    ),
  );
  const input = idsTensor(rows, length);
  const wall: Record<Form, number[]> = { naive: [], fused: [] };
  const cpu: Record<Form, number[]> = { naive: [], fused: [] };
  for (const form of FORMS) await embed(form, input); // warm-up
  for (let k = 0; k < repeats[length]; k++) {
    // Alternate which graph goes first, so a drift in the machine's load falls on both.
    for (const form of k % 2 === 0 ? FORMS : [...FORMS].reverse()) {
      const cpuBefore = process.cpuUsage();
      const started = performance.now();
      await embed(form, input);
      wall[form].push(performance.now() - started);
      const used = process.cpuUsage(cpuBefore);
      cpu[form].push((used.user + used.system) / 1000);
    }
  }
  timing.push({
    length,
    runs: repeats[length],
    wall: { naive: median(wall.naive), fused: median(wall.fused) },
    cpu: { naive: median(cpu.naive), fused: median(cpu.fused) },
  });
}

const worst = Math.max(...parity.flatMap((p) => [p.errors.naive, p.errors.fused]));
const lines = [
  `onnxruntime-node ${ort.env.versions.common}, CPU provider, graph optimisation "all", ${threads} intra-op thread(s); batch ${batch}.`,
  '',
  '| tokens | runs | naive ms (wall) | fused ms (wall) | speed-up (wall) | naive ms (CPU) | fused ms (CPU) | speed-up (CPU) |',
  '|---|---|---|---|---|---|---|---|',
  ...timing.map(
    ({ length, runs, wall, cpu }) =>
      `| ${length} | ${runs} | ${wall.naive.toFixed(0)} | ${wall.fused.toFixed(0)} | ${(wall.naive / wall.fused).toFixed(2)}× | ` +
      `${cpu.naive.toFixed(0)} | ${cpu.fused.toFixed(0)} | ${(cpu.naive / cpu.fused).toFixed(2)}× |`,
  ),
  '',
  `Session creation: naive ${(createMs.naive / 1000).toFixed(1)} s, fused ${(createMs.fused / 1000).toFixed(1)} s.`,
  '',
  `Parity against PyTorch (${reference.batches[0].ids.length} rows of random lengths 2 … L, zero-padded to L; relative error = max|a − b| / max|b|):`,
  '',
  '| L | naive vs PyTorch | fused vs PyTorch | fused vs naive |',
  '|---|---|---|---|',
  ...parity.map(
    (p) =>
      `| ${p.length} | ${p.errors.naive.toExponential(2)} | ${p.errors.fused.toExponential(2)} | ${p.between.toExponential(2)} |`,
  ),
  '',
  `Result: **${worst <= TOLERANCE ? 'PASS' : 'FAIL'}** (tolerance ${TOLERANCE}).`,
];
console.log(lines.join('\n'));
process.exitCode = worst <= TOLERANCE ? 0 : 1;
