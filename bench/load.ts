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
import { writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import autocannon from 'autocannon';
import { autocannonRequests, fmtMiB, metricsSummary, preflight, routeMix } from './lib/load.js';
import { ROOT, rssBytes, startServer } from './lib/processes.js';

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
