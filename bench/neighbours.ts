/**
 * Cosine neighbours of a neuron (GET /v1/neurons/{id}/neighbours) at RN50-x4 size (C = 2,560,
 * D = 640), on random data, in one run:
 *
 * - by weights: the cosines of one row of W against all rows (the row norms computed on the first
 *   query), against numpy's W @ W[n] on the same W as the floor of the product;
 * - by activations over a synthetic collection of BENCH_NEIGHBOUR_IMAGES images (default 20,000):
 *   the first query (the per-neuron moments: two scans of means.f32, then the query's scan), later
 *   queries (the neuron's column from the column-major blocks and one scan), against a bare scan of
 *   means.f32 (reading the chunks, nothing computed) in the same run.
 *
 * Writes bench/results/neighbours.md (or BENCH_RESULT).
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { NeuronCatalogue } from '../src/attribution/neuron-catalogue.js';
import { writeColumnBlocks } from '../src/collections/columns.js';
import { CollectionReader } from '../src/collections/reader.js';
import type { CollectionService } from '../src/collections/service.js';
import {
  COLUMN_BLOCK,
  CollectionStore,
  emptyBuild,
  FILES,
  type CollectionManifest,
} from '../src/collections/store.js';
import { REPO_ROOT } from '../src/config.js';
import { NeighbourService } from '../src/evidence/neighbour-service.js';
import { CentredDots, ColumnMoments, correlations, topNeighbours } from '../src/evidence/neighbours.js';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const C = 2560;
const D = 640;
const N = Number(process.env.BENCH_NEIGHBOUR_IMAGES ?? 20_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const RESULT = process.env.BENCH_RESULT ?? path.join(REPO_ROOT, 'bench', 'results', 'neighbours.md');

const lines: string[] = [];
const log = (line: string) => {
  console.log(line);
  lines.push(line);
};
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
async function timed(run: () => Promise<unknown> | unknown): Promise<number> {
  const t0 = performance.now();
  await run();
  return performance.now() - t0;
}
async function medianOf(run: (i: number) => Promise<unknown> | unknown): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) times.push(await timed(() => run(i)));
  return median(times);
}
/** Median wall and CPU (user + system, every thread of the process) ms per run, and the longest event-loop delay. */
async function profile(run: (i: number) => Promise<unknown>) {
  const walls: number[] = [];
  const cpus: number[] = [];
  const delay = monitorEventLoopDelay({ resolution: 5 });
  delay.enable();
  for (let i = 0; i < RUNS; i++) {
    const cpu = process.cpuUsage();
    walls.push(await timed(() => run(i)));
    const used = process.cpuUsage(cpu);
    cpus.push((used.user + used.system) / 1000);
  }
  delay.disable();
  return { wall: median(walls), cpu: median(cpus), maxDelay: delay.max / 1e6 };
}

const tmp = await mkdtemp(path.join(os.tmpdir(), 'bench-neighbours-'));
try {
  const store = new CollectionStore(tmp);
  const id = 'synthetic';
  const manifest: CollectionManifest = {
    format: 1,
    id,
    name: id,
    owner: 'bench',
    createdAt: new Date().toISOString(),
    model: { sha256: 'synthetic', neurons: C, embedDim: D, grid: [9, 9] },
    images: N,
    bytes: 0,
    metaBytes: 0,
    thumbBytes: 0,
    pendingBytes: 0,
    categories: [],
    categoryCounts: [],
    build: emptyBuild(),
    columnBlock: COLUMN_BLOCK,
    columnBlocks: 0,
  };
  await mkdir(store.dir(id), { recursive: true });
  // Means with a little shared structure (a few latent factors), so correlations are not all ~0.
  const factors = Array.from({ length: 8 }, () =>
    Float32Array.from({ length: C }, () => Math.random() - 0.5),
  );
  const handle = await open(store.file(id, FILES.means), 'w');
  const rowsPerChunk = 512;
  for (let row = 0; row < N; row += rowsPerChunk) {
    const count = Math.min(rowsPerChunk, N - row);
    const values = new Float32Array(count * C);
    for (let r = 0; r < count; r++) {
      const weights = factors.map(() => Math.random() * 2 - 1);
      for (let c = 0; c < C; c++) {
        let v = Math.random() * 0.5;
        for (let f = 0; f < factors.length; f++) v += weights[f] * factors[f][c];
        values[r * C + c] = Math.max(0, v);
      }
    }
    await handle.write(new Uint8Array(values.buffer), 0, values.byteLength, row * C * 4);
  }
  await handle.close();
  // writeColumnBlocks transposes means, maxima and argmax: the other two as placeholders of the same size.
  await writeFile(store.file(id, FILES.maxima), Buffer.alloc(N * C * 4));
  await writeFile(store.file(id, FILES.argmax), Buffer.alloc(N * C * 2));
  await store.writeManifest(manifest);
  const blocked = await writeColumnBlocks(store, manifest);

  const W = Float32Array.from({ length: C * D }, () => Math.random() - 0.5);
  const wFile = path.join(tmp, 'bilinear.f32');
  await writeFile(wFile, new Uint8Array(W.buffer));
  const collections = { store, get: async () => blocked } as unknown as CollectionService;
  const catalogue = { get: () => undefined } as unknown as NeuronCatalogue;
  const service = new NeighbourService({
    model: { neuronCount: C, embedDim: D, bilinear: W },
    catalogue,
    collections,
  });

  const firstWeights = await timed(() => service.byWeights(0, 10));
  const weights = await medianOf((i) => service.byWeights(1 + i, 10));
  const numpy = JSON.parse(
    execFileSync(
      '/usr/bin/python3',
      [
        '-c',
        `import json, sys, time
import numpy as np
W = np.fromfile(sys.argv[1], dtype="<f4").reshape(${C}, ${D})
times = []
for n in range(${RUNS}):
    t0 = time.perf_counter()
    cos = (W @ W[n]) / (np.linalg.norm(W, axis=1) * np.linalg.norm(W[n]))
    np.argpartition(-cos, 11)[:11]
    times.append((time.perf_counter() - t0) * 1000)
print(json.dumps(sorted(times)[len(times) // 2]))`,
        wFile,
      ],
      { env: { ...process.env, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1' } },
    ).toString(),
  ) as number;

  const reader = new CollectionReader(store, blocked);
  const bareScan = await medianOf(() => reader.scan(FILES.means, () => undefined));
  const firstActivations = await timed(() => service.byActivations(blocked, 0, 10));
  const answers: Awaited<ReturnType<typeof service.byActivations>>[] = [];
  const activations = await profile(async (i) =>
    answers.push(await service.byActivations(blocked, 1 + i, 10)),
  );
  const column = await medianOf((i) => reader.column(FILES.means, 100 + i));
  const here = new NeighbourService({
    model: { neuronCount: C, embedDim: D, bilinear: W },
    catalogue,
    collections,
    thread: false,
  });
  await here.byActivations(blocked, 0, 10); // its moments
  const calling = await profile((i) => here.byActivations(blocked, 1 + i, 10));
  // The previous code's query, on this thread: the column, then one row-major scan (CentredDots).
  const moments = new ColumnMoments(C);
  await reader.scan(FILES.means, (rows, _start, count) => moments.addToMeans(rows, count));
  const means = moments.finishMeans();
  await reader.scan(FILES.means, (rows, _start, count) => moments.addToSquares(rows, count));
  const { squares } = moments.result();
  let worst = 0;
  let sameIds = true;
  const previous = await profile(async (i) => {
    const neuron = 1 + i;
    const values = await reader.column(FILES.means, neuron);
    const target = Float64Array.from(values.subarray(0, N), (value) => value - means[neuron]);
    const dots = new CentredDots(means, target);
    await reader.scan(FILES.means, (rows, start, count) => dots.add(rows, start, count));
    const found = topNeighbours(correlations(dots.dots, squares, squares[neuron]), neuron, 10);
    worst = Math.max(worst, ...found.map((row, j) => Math.abs(row.cosine - answers[i][j].cosine)));
    sameIds &&= found.every((row, j) => row.neuron === answers[i][j].neuron);
  });
  await service.close();

  const load = os.loadavg()[0].toFixed(1);
  log(`## Cosine neighbours at RN50-x4 size (C = ${C}, D = ${D})`);
  log('');
  log(
    `One run, ${new Date().toISOString().slice(0, 16)} UTC, load average ${load} on ${os.cpus().length} cores; medians of ${RUNS} queries (each a different neuron). CPU: the process's user + system time, every thread.`,
  );
  log('');
  log('| query | wall | CPU | longest event-loop delay | reference in the same run |');
  log('|---|---|---|---|---|');
  log(`| by weights, first query (row norms of W) | ${firstWeights.toFixed(1)} ms | | | |`);
  log(
    `| by weights | ${weights.toFixed(1)} ms | | | numpy W @ W[n] with norms and a partition, 1 thread: ${numpy.toFixed(1)} ms (${(weights / numpy).toFixed(1)}×) |`,
  );
  log(
    `| by activations over ${N.toLocaleString('en')} images, first query (moments: one pass over the blocks, then the query; on the thread) | ${firstActivations.toFixed(0)} ms | | | a bare scan of means.f32 (${((N * C * 4) / 2 ** 20).toFixed(0)} MiB, nothing computed): ${bareScan.toFixed(0)} ms |`,
  );
  log(
    `| by activations, later queries (column blocks, on the thread) | ${activations.wall.toFixed(0)} ms | ${activations.cpu.toFixed(0)} ms | ${activations.maxDelay.toFixed(0)} ms | the column alone ${column.toFixed(1)} ms |`,
  );
  log(
    `| the same on the calling thread | ${calling.wall.toFixed(0)} ms | ${calling.cpu.toFixed(0)} ms | ${calling.maxDelay.toFixed(0)} ms | |`,
  );
  log(
    `| the previous code's query (one row-major scan, on the event loop) | ${previous.wall.toFixed(0)} ms | ${previous.cpu.toFixed(0)} ms | ${previous.maxDelay.toFixed(0)} ms | CPU ratio previous / now: ${(previous.cpu / activations.cpu).toFixed(1)}× |`,
  );
  log('');
  log(
    `Both paths' neighbours of the ${RUNS} neurons: ${sameIds ? 'the same neurons in the same order' : 'DIFFERENT neurons'}, cosines within ${worst.toExponential(1)}.`,
  );
  log('');
  await mkdir(path.dirname(RESULT), { recursive: true });
  await writeFile(RESULT, `${lines.join('\n')}\n`);
} finally {
  await rm(tmp, { recursive: true, force: true });
}
