/**
 * Image memory benchmark (issue 21, failure 5): 16 concurrent uploads of the largest image the
 * service accepts (MAX_IMAGE_PIXELS, 4096 × 4096 by default: a PNG of about 50 KB that decodes to
 * 48 MiB of RGB) must keep the server's resident memory at or under 1 GiB.
 *
 * For each setting the service runs as its own process (bench/lib/processes.ts); after a warm-up
 * image, 16 clients post the image at once (multipart) for `--rounds` rounds, while the server's
 * VmRSS is sampled every 25 ms. Rows: the default decode bound (IMAGE_DECODE_CONCURRENCY=2), no
 * bound (16 decodes at once) for comparison, and the 7,000 × 7,000 PNG of the issue (refused from
 * its header: 413). Results go to bench/results/image-memory.md.
 *
 *   npx tsx bench/image-memory.ts [--clients 16] [--rounds 2]
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { MAX_IMAGE_PIXELS } from '../src/limits.js';
import { fmtMiB } from './lib/load.js';
import { ROOT, rssBytes, sleep, startServer } from './lib/processes.js';

function argument(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const clients = Number(argument('clients', '16'));
const rounds = Number(argument('rounds', '2'));
const out = path.resolve(ROOT, argument('out', 'bench/results/image-memory.md'));
const LIMIT_BYTES = 1024 ** 3;

/** A PNG of `side` × `side` with a little structure (a gradient), compressed hard. */
async function png(side: number): Promise<Buffer> {
  const row = Buffer.alloc(side * 3);
  for (let x = 0; x < side; x++) row.fill(x % 256, x * 3, x * 3 + 3);
  const raw = Buffer.alloc(side * side * 3);
  for (let y = 0; y < side; y++) row.copy(raw, y * side * 3);
  return sharp(raw, { raw: { width: side, height: side, channels: 3 } })
    .png({ compressionLevel: 9 })
    .toBuffer();
}

async function upload(url: string, image: Buffer): Promise<{ status: number; ms: number }> {
  const form = new FormData();
  form.append('image', new Blob([image], { type: 'image/png' }), 'big.png');
  const started = performance.now();
  const response = await fetch(`${url}/v1/embed/image`, { method: 'POST', body: form });
  await response.arrayBuffer();
  return { status: response.status, ms: performance.now() - started };
}

interface Row {
  setting: string;
  image: string;
  statuses: Record<string, number>;
  rssBefore: number;
  rssPeak: number;
  p50: number;
  max: number;
}

async function measure(setting: string, env: Record<string, string>, image: Buffer, label: string) {
  const server = await startServer({ RATE_LIMIT_PER_MINUTE: '0', WARM_DEFAULT_FIT: 'false', ...env });
  try {
    await upload(server.url, await png(256)); // warm-up: the model's first run
    await sleep(500);
    const rssBefore = rssBytes(server.pid);
    let rssPeak = rssBefore;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        rssPeak = Math.max(rssPeak, rssBytes(server.pid));
        await sleep(25);
      }
    })();
    const statuses: Record<string, number> = {};
    const times: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const answers = await Promise.all(Array.from({ length: clients }, () => upload(server.url, image)));
      for (const { status, ms } of answers) {
        statuses[status] = (statuses[status] ?? 0) + 1;
        times.push(ms);
      }
    }
    sampling = false;
    await sampler;
    times.sort((a, b) => a - b);
    const row: Row = {
      setting,
      image: label,
      statuses,
      rssBefore,
      rssPeak,
      p50: times[Math.floor(times.length / 2)],
      max: times.at(-1)!,
    };
    console.error(JSON.stringify({ ...row, rssBefore: fmtMiB(rssBefore), rssPeak: fmtMiB(rssPeak) }));
    return row;
  } finally {
    await server.stop();
  }
}

const side = Math.floor(Math.sqrt(MAX_IMAGE_PIXELS));
const largest = await png(side);
const bomb = await png(7000);
const rows: Row[] = [];
const largestLabel = `${side}×${side} PNG, ${(largest.length / 1024).toFixed(0)} KB`;
rows.push(await measure('defaults (IMAGE_DECODE_CONCURRENCY=2)', {}, largest, largestLabel));
rows.push(
  await measure(
    'IMAGE_DECODE_CONCURRENCY=16 (no bound)',
    { IMAGE_DECODE_CONCURRENCY: '16' },
    largest,
    largestLabel,
  ),
);
rows.push(
  await measure(
    'defaults',
    {},
    bomb,
    `7000×7000 PNG, ${(bomb.length / 1024).toFixed(0)} KB (over the limit)`,
  ),
);

const lines = [
  '# Image memory: concurrent uploads of the largest accepted image',
  '',
  `Run ${new Date().toISOString()} on ${process.platform}, node ${process.version}; ${clients} concurrent`,
  `clients × ${rounds} rounds of multipart uploads to POST /v1/embed/image (the embedded model), the`,
  `server's VmRSS sampled every 25 ms. MAX_IMAGE_PIXELS = ${MAX_IMAGE_PIXELS}. Goal: peak ≤ 1 GiB.`,
  '',
  '| setting | image | statuses | RSS before | RSS peak | latency p50 / max | peak ≤ 1 GiB |',
  '|---|---|---|---|---|---|---|',
  ...rows.map(
    (row) =>
      `| ${row.setting} | ${row.image} | ${Object.entries(row.statuses)
        .map(([status, n]) => `${n} × ${status}`)
        .join(
          ', ',
        )} | ${fmtMiB(row.rssBefore)} | ${fmtMiB(row.rssPeak)} | ${row.p50.toFixed(0)} / ${row.max.toFixed(0)} ms | ${row.rssPeak <= LIMIT_BYTES ? 'yes' : 'no'} |`,
  ),
  '',
];
writeFileSync(out, lines.join('\n'));
console.log(lines.join('\n'));
const failed = rows[0].rssPeak > LIMIT_BYTES || rows[0].statuses['200'] !== clients * rounds;
process.exit(failed ? 1 : 0);
