/**
 * Load benchmark: the real server (`node --import tsx src/bin/server.ts`, a child process, so that its
 * resident memory is measured alone) on the embedded model, driven by autocannon at concurrency 64
 * for 60 s over a mix of routes. Reports errors, latency percentiles, throughput per status, and
 * the server's RSS sampled every second from /proc/<pid>/status (growth between the 10th and the
 * 60th second must stay under 10%). Results go to bench/results/load.md.
 *
 *   npx tsx bench/load.ts [--duration 60] [--connections 64] [--redis redis://…] [--out file.md]
 *
 * Rate limiting is set far above the load (one client IP would otherwise be limited at the default
 * 6,000 per minute), so the limiter still runs on every request.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import autocannon from 'autocannon';
import sharp from 'sharp';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface ServerProcess {
  child: ChildProcess;
  pid: number;
  url: string;
  log: () => string;
  stop: () => Promise<number | null>;
}

/** Starts the service as its own process and waits for /health. */
export async function startServer(env: Record<string, string>): Promise<ServerProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/bin/server.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      ORT_PROVIDERS: 'cpu',
      RATE_LIMIT_PER_MINUTE: '10000000',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const keep = (chunk: Buffer) => {
    log += chunk.toString();
    if (log.length > 200_000) log = log.slice(-100_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the server exited:\n${log.slice(-3000)}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the server did not answer /health:\n${log.slice(-3000)}`);
    }
    try {
      if ((await fetch(`${url}/health`)).ok) break;
    } catch {
      // not listening yet
    }
    await sleep(200);
  }
  const stop = async () => {
    if (child.exitCode !== null) return child.exitCode;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    const code = await Promise.race([exited, sleep(15_000).then(() => 'timeout' as const)]);
    if (code === 'timeout') {
      child.kill('SIGKILL');
      return null;
    }
    return code;
  };
  return { child, pid: child.pid!, url, log: () => log, stop };
}

/** Resident memory of a process in bytes (VmRSS of /proc/<pid>/status). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
  return match ? Number(match[1]) * 1024 : NaN;
}

export interface MixEntry {
  name: string;
  method: 'GET' | 'POST';
  path: string | (() => string);
  body?: () => unknown;
}

/** A mix of the service's routes; prompts come from a pool (a realistic mix of cache hits and misses). */
export async function routeMix(options: { promptPool?: number } = {}): Promise<MixEntry[]> {
  const pool = options.promptPool ?? 2000;
  const colours = ['red', 'green', 'blue', 'yellow', 'purple', 'orange', 'pink', 'brown'];
  const shapes = ['star', 'circle', 'square', 'triangle', 'heart', 'diamond', 'apple', 'tree'];
  const prompts = Array.from(
    { length: pool },
    (_, i) => `a ${colours[i % 8]} ${shapes[Math.floor(i / 8) % 8]} number ${Math.floor(i / 64)}`,
  );
  const images = await Promise.all(
    colours.map((_, i) =>
      sharp({
        create: {
          width: 48 + i * 8,
          height: 64,
          channels: 3,
          background: { r: 30 * i, g: 255 - 30 * i, b: 90 },
        },
      })
        .png()
        .toBuffer()
        .then((png) => png.toString('base64')),
    ),
  );
  let n = 0;
  const prompt = () => prompts[n++ % prompts.length];
  const image = () => images[n++ % images.length];
  return [
    { name: 'health', method: 'GET', path: '/health' },
    { name: 'model', method: 'GET', path: '/v1/model' },
    { name: 'tokenize', method: 'POST', path: '/v1/tokenize', body: () => ({ texts: [prompt(), prompt()] }) },
    { name: 'embed text', method: 'POST', path: '/v1/embed/text', body: () => ({ texts: [prompt()] }) },
    {
      name: 'embed text ×8',
      method: 'POST',
      path: '/v1/embed/text',
      body: () => ({ texts: Array.from({ length: 8 }, prompt) }),
    },
    {
      name: 'attribution text',
      method: 'POST',
      path: '/v1/attribution/text',
      body: () => ({ texts: [prompt()], topK: 5 }),
    },
    { name: 'embed image', method: 'POST', path: '/v1/embed/image', body: () => ({ image: image() }) },
    {
      name: 'classify',
      method: 'POST',
      path: '/v1/classify',
      body: () => ({ image: image(), labels: colours.slice(0, 4), template: 'a {} shape' }),
    },
    { name: 'raster', method: 'GET', path: () => `/v1/raster?text=${encodeURIComponent(shapes[n++ % 8])}` },
    { name: 'neuron', method: 'GET', path: () => `/v1/neurons/${n++ % 64}` },
    { name: 'emotions', method: 'GET', path: '/v1/emotions' },
  ];
}

/** Keeps the entries that answer 200 now (the preflight), with the reason for dropping the others. */
export async function preflight(
  url: string,
  mix: MixEntry[],
): Promise<{ kept: MixEntry[]; dropped: string[] }> {
  const kept: MixEntry[] = [];
  const dropped: string[] = [];
  for (const entry of mix) {
    const target = typeof entry.path === 'string' ? entry.path : entry.path();
    const res = await fetch(url + target, {
      method: entry.method,
      headers: entry.body ? { 'content-type': 'application/json' } : {},
      body: entry.body ? JSON.stringify(entry.body()) : undefined,
    });
    const text = await res.text();
    if (res.status === 200) kept.push(entry);
    else dropped.push(`${entry.name} (${entry.method} ${target}: ${res.status} ${text.slice(0, 120)})`);
  }
  return { kept, dropped };
}

export function autocannonRequests(mix: MixEntry[]): autocannon.Request[] {
  return mix.map((entry) => ({
    method: entry.method,
    path: typeof entry.path === 'string' ? entry.path : '/',
    headers: entry.body ? { 'content-type': 'application/json' } : undefined,
    setupRequest: (request: autocannon.Request) => ({
      ...request,
      path: typeof entry.path === 'string' ? entry.path : entry.path(),
      ...(entry.body ? { body: JSON.stringify(entry.body()) } : {}),
    }),
  }));
}

/** Reads /metrics and picks a few numbers out of it. */
export async function metricsSummary(url: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const total = (pattern: RegExp) =>
    text
      .split('\n')
      .filter((line) => pattern.test(line))
      .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
  const hits = total(/^cache_lookups_total\{result="hit"/);
  const misses = total(/^cache_lookups_total\{result="miss"/);
  const runs = total(/^ort_batch_rows_count/);
  const rows = total(/^ort_batch_rows_sum/);
  const ortSeconds = total(/^ort_run_duration_seconds_sum/);
  return {
    cacheHits: hits,
    cacheMisses: misses,
    cacheHitRatio: hits / Math.max(1, hits + misses),
    ortRuns: runs,
    meanBatchRows: rows / Math.max(1, runs),
    meanOrtRunMs: (1000 * ortSeconds) / Math.max(1, runs),
  };
}

export function fmtMiB(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

function argument(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

async function main(): Promise<void> {
  const duration = Number(argument('duration', '60'));
  const connections = Number(argument('connections', '64'));
  const redisUrl = argument('redis', '');
  const out = path.resolve(ROOT, argument('out', 'bench/results/load.md'));

  const server = await startServer({ REDIS_URL: redisUrl });
  console.error(`server pid ${server.pid} at ${server.url}${redisUrl ? ` with Redis ${redisUrl}` : ''}`);
  try {
    const { kept, dropped } = await preflight(server.url, await routeMix());
    for (const reason of dropped) console.error(`not in the mix: ${reason}`);

    const samples: { t: number; rss: number }[] = [];
    const started = Date.now();
    const sampler = setInterval(() => {
      try {
        samples.push({ t: (Date.now() - started) / 1000, rss: rssBytes(server.pid) });
      } catch {
        // the process is gone; the run reports it
      }
    }, 1000);
    const result = await autocannon({
      url: server.url,
      connections,
      duration,
      timeout: 30,
      requests: autocannonRequests(kept),
    });
    clearInterval(sampler);
    const metrics = await metricsSummary(server.url);
    const alive = server.child.exitCode === null;
    const exitCode = await server.stop();

    const at = (second: number) =>
      samples.reduce((best, s) => (Math.abs(s.t - second) < Math.abs(best.t - second) ? s : best));
    const rss10 = at(10).rss;
    const rssEnd = at(duration).rss;
    const growth = (rssEnd - rss10) / rss10;
    const peak = Math.max(...samples.map((s) => s.rss));
    const statuses = Object.entries(result.statusCodeStats ?? {})
      .map(([code, stat]) => `${code}: ${stat.count ?? 0}`)
      .join(', ');
    const failed = result.errors + result.timeouts + result.non2xx;
    const pass = failed === 0 && growth < 0.1 && alive && exitCode === 0;

    const lines = [
      '# Load benchmark',
      '',
      `The service as its own process (\`node --import tsx src/bin/server.ts\`, embedded model \`models/toyworld\`,`,
      `CPU onnxruntime, ${redisUrl ? `Redis cache at ${redisUrl}` : 'in-memory cache'}, rate limiting on with a limit above the load),`,
      `driven by autocannon: ${connections} connections for ${duration} s, the requests below in turn on every connection.`,
      `${new Date().toISOString().slice(0, 16)} UTC on ${os.cpus().length} CPU cores (${os.cpus()[0]?.model ?? 'unknown'}),`,
      'shared with other work: absolute numbers are noisy, errors and memory growth are the point.',
      '',
      `Mix (${kept.length} requests): ${kept.map((e) => `${e.name} (\`${e.method} ${typeof e.path === 'string' ? e.path : e.path()}\`)`).join(', ')}.`,
      ...(dropped.length > 0 ? ['', `Left out (not 200 on this model): ${dropped.join('; ')}.`] : []),
      '',
      '## Result',
      '',
      `| | |`,
      `|---|---|`,
      `| verdict | **${pass ? 'pass' : 'FAIL'}** (0 failed requests, RSS growth 10 s → ${duration} s under 10%, clean exit) |`,
      `| requests | ${result.requests.total} (${result.requests.average.toFixed(0)} req/s on average) |`,
      `| failed | ${failed} (errors ${result.errors}, timeouts ${result.timeouts}, non-2xx ${result.non2xx}) |`,
      `| statuses | ${statuses} |`,
      `| latency p50 / p90 / p99 / max | ${result.latency.p50} / ${result.latency.p90} / ${result.latency.p99} / ${result.latency.max} ms |`,
      `| latency mean ± sd | ${result.latency.average.toFixed(1)} ± ${result.latency.stddev.toFixed(1)} ms |`,
      `| RSS at 10 s / at ${duration} s / peak | ${fmtMiB(rss10)} / ${fmtMiB(rssEnd)} / ${fmtMiB(peak)} |`,
      `| RSS growth 10 s → ${duration} s | ${(growth * 100).toFixed(1)}% |`,
      `| cache hit ratio | ${(metrics.cacheHitRatio * 100).toFixed(1)}% |`,
      `| onnxruntime runs, mean batch rows, mean run | ${metrics.ortRuns}, ${metrics.meanBatchRows.toFixed(1)}, ${metrics.meanOrtRunMs.toFixed(2)} ms |`,
      `| server exit after SIGTERM | ${exitCode} |`,
      '',
      '## Resident memory (every 5 s)',
      '',
      '| second | RSS |',
      '|---:|---:|',
      ...samples
        .filter((s) => Math.round(s.t) % 5 === 0)
        .map((s) => `| ${s.t.toFixed(0)} | ${fmtMiB(s.rss)} |`),
      '',
      'Reproduce: `npx tsx bench/load.ts` (options `--duration`, `--connections`, `--redis <url>`).',
      '',
    ];
    mkdirSync(path.dirname(out), { recursive: true });
    writeFileSync(out, lines.join('\n'));
    console.log(lines.join('\n'));
    if (!pass) process.exitCode = 1;
  } catch (error) {
    console.error(server.log().slice(-3000));
    await server.stop();
    throw error;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
