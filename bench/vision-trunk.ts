/**
 * Does an exporter or session change pay for the vision trunk? (issue 23; `npm run bench --
 * vision-trunk`, through bench/vision-trunk-rn50x4.sh, which writes WORK with bench/vision_trunk.py.)
 *
 *   npx tsx bench/vision-trunk.ts WORK [--rounds 7] [--batch 2] [--threads 1]
 *
 * Side by side in one process, taking turns round by round, on the same pixels: visual_trunk.onnx as
 * the exporter writes it under the service's session options (graph optimisation "all", which
 * includes onnxruntime's NCHWc layout), the same graph at the "extended" and "basic" levels, the graph
 * without its no-op Pad and AveragePool nodes (trunk-nopad.onnx), and the graph as onnxruntime
 * optimises it at "all", saved (optimizedModelFilePath) and loaded with optimisation disabled.
 * Parity of each against PyTorch (relative error = max|a − b| / max|b|); CPU seconds per run of
 * this process (the cores are shared: the CPU time is the figure) and wall seconds, medians.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const WORK = path.resolve(process.argv[2] ?? '/tmp/mmn-rn50x4-trunk');
const ROUNDS = option('rounds', 7);
const THREADS = option('threads', 1);

const shapes = JSON.parse(readFileSync(path.join(WORK, 'trunk-reference.json'), 'utf8')) as {
  pixels: number[];
  neurons: number[];
};
const raw = readFileSync(path.join(WORK, 'trunk-reference.bin'));
const count = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
const floats = new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4);
const pixels = floats.slice(0, count(shapes.pixels));
const want = floats.slice(count(shapes.pixels));
const BATCH = option('batch', shapes.pixels[0]!);

function relativeError(got: Float32Array, expected: Float32Array): number {
  let [diff, scale] = [0, 0];
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(got[i]! - expected[i]!));
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  return diff / scale;
}

const base: ort.InferenceSession.SessionOptions = {
  executionProviders: ['cpu'],
  executionMode: 'sequential',
  interOpNumThreads: 1,
  intraOpNumThreads: THREADS,
};
const optimisedFile = path.join(WORK, 'trunk-ort-optimised.onnx');
// The optimised form is written by a session that onnxruntime creates for it, then loaded as a file.
await ort.InferenceSession.create(path.join(WORK, 'trunk-exported.onnx'), {
  ...base,
  graphOptimizationLevel: 'all',
  optimizedModelFilePath: optimisedFile,
});
const variants: {
  name: string;
  file: string;
  level: ort.InferenceSession.SessionOptions['graphOptimizationLevel'];
}[] = [
  { name: 'exported, "all" (the service)', file: 'trunk-exported.onnx', level: 'all' },
  { name: 'exported, "extended" (no NCHWc layout)', file: 'trunk-exported.onnx', level: 'extended' },
  { name: 'exported, "basic"', file: 'trunk-exported.onnx', level: 'basic' },
  { name: 'no-op Pad/AveragePool nodes removed, "all"', file: 'trunk-nopad.onnx', level: 'all' },
  {
    name: 'onnxruntime-optimised at "all", saved, loaded "disabled"',
    file: optimisedFile,
    level: 'disabled',
  },
];
const sessions = await Promise.all(
  variants.map(async (variant) => {
    const started = performance.now();
    const session = await ort.InferenceSession.create(path.join(WORK, path.basename(variant.file)), {
      ...base,
      graphOptimizationLevel: variant.level,
    });
    return { ...variant, session, createSeconds: (performance.now() - started) / 1000 };
  }),
);

const size = shapes.pixels.slice(1);
const input = new ort.Tensor('float32', pixels.slice(0, BATCH * count(size)), [BATCH, ...size]);
const wantBatch = want.slice(0, BATCH * count(shapes.neurons.slice(1)));
const run = async (session: ort.InferenceSession) => {
  const out = await session.run({ [session.inputNames[0]!]: input });
  return out[session.outputNames[0]!]!.data as Float32Array;
};
const errors = new Map<string, number>();
for (const s of sessions) errors.set(s.name, relativeError(await run(s.session), wantBatch)); // and warm-up
const cpu = new Map<string, number[]>(sessions.map((s) => [s.name, []]));
const wall = new Map<string, number[]>(sessions.map((s) => [s.name, []]));
const loadBefore = os.loadavg()[0]!.toFixed(1);
for (let round = 0; round < ROUNDS; round++) {
  for (let i = 0; i < sessions.length; i++) {
    const s = sessions[(i + round) % sessions.length]!;
    const [w0, c0] = [performance.now(), process.cpuUsage()];
    await run(s.session);
    const c = process.cpuUsage(c0);
    cpu.get(s.name)!.push((c.user + c.system) / 1e6);
    wall.get(s.name)!.push((performance.now() - w0) / 1000);
  }
  console.error(`round ${round + 1}/${ROUNDS} (load ${os.loadavg()[0]!.toFixed(1)})`);
}
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const [baseCpu, baseWall] = [median(cpu.get(sessions[0]!.name)!), median(wall.get(sessions[0]!.name)!)];
const lines = [
  `Batch ${BATCH} of ${size.join(' × ')} seeded pixels, ${THREADS} intra-op thread(s), ${ROUNDS} rounds taking turns (load average ${loadBefore} → ${os.loadavg()[0]!.toFixed(1)}), medians; speed = the service's CPU (wall) time over the variant's.`,
  '',
  '| trunk | max relative error vs PyTorch | CPU s per run | speed (CPU) | wall s per run | speed (wall) | session creation s |',
  '|---|---|---|---|---|---|---|',
  ...sessions.map((s) => {
    const [c, w] = [median(cpu.get(s.name)!), median(wall.get(s.name)!)];
    return `| ${s.name} | ${errors.get(s.name)!.toExponential(1)} | ${c.toFixed(2)} | ${(baseCpu / c).toFixed(2)}× | ${w.toFixed(2)} | ${(baseWall / w).toFixed(2)}× | ${s.createSeconds.toFixed(1)} |`;
  }),
  '',
];
console.log(lines.join('\n'));
process.exit(0);
