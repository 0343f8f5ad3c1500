/**
 * onnxruntime timing of text.onnx at batch 64 for several sequence lengths, graph optimisation
 * levels and thread counts (for bench/text-encoder-rn50x4.sh). Prints JSON.
 *   tsx bench/ort-text.ts MODEL_DIR
 */
import path from 'node:path';
import * as ort from 'onnxruntime-node';

const modelDir = process.argv[2];
const batch = 64;
const lengths = [8, 77];
const repeats = 5;
const results: { level: string; threads: number; length: number; rowsPerSecond: number }[] = [];
const vocab = 49408;

for (const level of ['disabled', 'basic', 'all'] as const) {
  for (const threads of [1, 2]) {
    const session = await ort.InferenceSession.create(path.join(modelDir, 'text.onnx'), {
      executionProviders: ['cpu'],
      graphOptimizationLevel: level,
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
    });
    for (const length of lengths) {
      const ids = new BigInt64Array(batch * length);
      for (let r = 0; r < batch; r++) {
        for (let i = 0; i < length; i++)
          ids[r * length + i] = BigInt(1 + ((r * 7919 + i * 104729) % (vocab - 3)));
        ids[r * length] = BigInt(vocab - 2);
        ids[r * length + length - 1] = BigInt(vocab - 1);
      }
      const feeds = { input_ids: new ort.Tensor('int64', ids, [batch, length]) };
      await session.run(feeds);
      const times: number[] = [];
      for (let k = 0; k < repeats; k++) {
        const started = performance.now();
        await session.run(feeds);
        times.push((performance.now() - started) / 1000);
      }
      times.sort((a, b) => a - b);
      results.push({ level, threads, length, rowsPerSecond: batch / times[Math.floor(repeats / 2)] });
    }
    await session.release();
  }
}
console.log(JSON.stringify({ batch, results }));
