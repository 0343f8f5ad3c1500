/**
 * Fault benchmark: Redis dies during a load run and comes back.
 *
 * A throwaway redis-server (its own port and directory, append-only file fsynced on every write, so
 * that a restart finds the queue as it was) backs the service's cache, rate limits and job queue.
 * Two search jobs are queued (one running, one waiting), then autocannon drives the usual route mix
 * at 64 connections; Redis is killed with SIGKILL at KILL_AT s and restarted at RESTART_AT s.
 * Expected: 0 failed requests throughout (the cache is bypassed while Redis is away), /health says
 * "degraded" during the outage and "ok" after, the cache fills again, and both jobs complete.
 * Results go to bench/results/fault.md.
 *
 *   npx tsx bench/fault.ts [--duration 45] [--kill-at 12] [--restart-at 27] [--connections 64]
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { autocannonRequests, fmtMiB, metricsSummary, preflight, routeMix } from './lib/load.js';
import {
  ROOT,
  freePort,
  rssBytes,
  sleep,
  startRedis,
  startServer,
  type RedisProcess,
} from './lib/processes.js';

function argument(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const duration = Number(argument('duration', '45'));
const killAt = Number(argument('kill-at', '12'));
const restartAt = Number(argument('restart-at', '27'));
const connections = Number(argument('connections', '64'));
const out = path.resolve(ROOT, argument('out', 'bench/results/fault.md'));

/** The throwaway Redis, persisting to `dir` (append-only file fsynced on every write). */
function startFaultRedis(port: number, dir: string): Promise<RedisProcess> {
  const args = ['--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always', '--protected-mode', 'no'];
  return startRedis({ port, args });
}

async function redisCli(port: number, ...args: string[]): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn('redis-cli', ['-p', String(port), ...args], { stdio: ['ignore', 'pipe', 'ignore'] });
    let text = '';
    child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
    child.on('close', () => resolve(text.trim()));
    child.on('error', () => resolve(''));
  });
}

interface JobView {
  id: string;
  state: string;
  progress: { steps: number; bestScore: number | null };
  result?: { stopReason: string; steps: number };
  error?: string;
}

async function main(): Promise<void> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mmn-fault-redis-'));
  let redis = await startFaultRedis(port, dir);
  const redisUrl = `redis://127.0.0.1:${port}`;
  const server = await startServer({ REDIS_URL: redisUrl, WORKER_CONCURRENCY: '1' });
  console.error(`server pid ${server.pid}, throwaway Redis on port ${port} (${dir})`);
  const events: string[] = [];
  let t0 = Date.now();
  const now = () => ((Date.now() - t0) / 1000).toFixed(1);
  const note = (text: string) => {
    events.push(`| ${now()} | ${text} |`);
    console.error(`${now()} s: ${text}`);
  };

  try {
    const { kept, dropped } = await preflight(server.url, await routeMix());
    for (const reason of dropped) console.error(`not in the mix: ${reason}`);

    t0 = Date.now();
    // Two searches: the first runs across the outage, the second waits behind it (concurrency 1).
    const submit = async (body: object) => {
      const res = await fetch(`${server.url}/v1/search/max-text`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as { jobId?: string } };
    };
    const seed = Date.now() % 1_000_000;
    const long = await submit({ neuron: 3, steps: 2000, restarts: 50, timeLimitS: 35, seed });
    const queued = await submit({ neuron: 5, steps: 100, restarts: 1, seed });
    const jobIds = [long.body.jobId, queued.body.jobId].filter((id): id is string => typeof id === 'string');
    note(`queued 2 search jobs (${long.status}, ${queued.status}): ${jobIds.join(', ')}`);

    // /health every second: the cache's view of Redis.
    const health: string[] = [];
    const samples: { t: number; rss: number }[] = [];
    let lastHealth = '';
    const monitor = setInterval(() => {
      samples.push({ t: (Date.now() - t0) / 1000, rss: rssBytes(server.pid) });
      void fetch(`${server.url}/health`)
        .then(async (res) => {
          const body = (await res.json()) as { status: string; cache: { ok: boolean } };
          const state = `${res.status} ${body.status} (cache ok: ${body.cache.ok})`;
          health.push(`${now()} s ${state}`);
          if (state !== lastHealth) note(`/health → ${state}`);
          lastHealth = state;
        })
        .catch((error: unknown) => note(`/health failed: ${String(error)}`));
    }, 1000);

    const killTimer = setTimeout(() => {
      void redis.stop(); // SIGKILL; its exit is awaited in the finally below
      note('Redis killed (SIGKILL)');
    }, killAt * 1000);
    let submittedDuringOutage = '';
    const probeTimer = setTimeout(
      () => {
        void submit({ neuron: 7, steps: 50, restarts: 0, seed }).then(
          (res) => {
            submittedDuringOutage = `${res.status} ${JSON.stringify(res.body).slice(0, 160)}`;
            note(`a search submitted while Redis is down → ${submittedDuringOutage}`);
          },
          (error: unknown) => note(`a search submitted while Redis is down → ${String(error)}`),
        );
      },
      ((killAt + restartAt) / 2) * 1000,
    );
    const restartTimer = setTimeout(() => {
      void startFaultRedis(port, dir).then(
        (restarted) => {
          redis = restarted;
          note('Redis restarted (same port, same append-only file)');
        },
        (error: unknown) => note(`Redis did not restart: ${String(error)}`),
      );
    }, restartAt * 1000);

    note(`autocannon: ${connections} connections, ${duration} s, ${kept.length} routes`);
    const result = await autocannon({
      url: server.url,
      connections,
      duration,
      timeout: 30,
      requests: autocannonRequests(kept),
    });
    clearTimeout(killTimer);
    clearTimeout(probeTimer);
    clearTimeout(restartTimer);
    note(
      `load done: ${result.requests.total} requests, ${result.errors + result.timeouts + result.non2xx} failed`,
    );

    // Recovery: the cache answers again and fills; the jobs finish.
    let cacheBack = false;
    for (let i = 0; i < 50 && !cacheBack; i++) {
      const body = (await (await fetch(`${server.url}/health`)).json()) as { cache: { ok: boolean } };
      cacheBack = body.cache.ok;
      if (!cacheBack) await sleep(200);
    }
    const keysBefore = Number(await redisCli(port, 'dbsize'));
    const fresh = `fault recovery probe ${Date.now()}`;
    const metricsBefore = await metricsSummary(server.url);
    for (let i = 0; i < 2; i++) {
      await fetch(`${server.url}/v1/embed/text`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ texts: [fresh] }),
      });
    }
    const keysAfter = Number(await redisCli(port, 'dbsize'));
    const probeMetrics = await metricsSummary(server.url);
    // The probe's first request misses and writes to Redis, its second one is a hit.
    const probeCached = keysAfter > keysBefore && probeMetrics.cacheHits > metricsBefore.cacheHits;
    note(
      `after restart: cache ok ${cacheBack}; Redis keys ${keysBefore} → ${keysAfter} and cache hits ${metricsBefore.cacheHits} → ${probeMetrics.cacheHits} over a new prompt asked twice`,
    );

    const finals: JobView[] = [];
    for (const id of jobIds) {
      const deadline = Date.now() + 120_000;
      let view: JobView | undefined;
      for (;;) {
        const res = await fetch(`${server.url}/v1/jobs/${id}`);
        view = res.status === 200 ? ((await res.json()) as JobView) : undefined;
        if (!view || ['completed', 'failed', 'cancelled'].includes(view.state) || Date.now() > deadline)
          break;
        await sleep(500);
      }
      finals.push(view ?? { id, state: 'missing', progress: { steps: 0, bestScore: null } });
      note(
        `job ${id}: ${view?.state ?? 'missing'}${view?.result ? ` (${view.result.stopReason}, ${view.result.steps} steps)` : ''}${view?.error ? ` error: ${view.error}` : ''}`,
      );
    }
    clearInterval(monitor);
    const metricsAfter = await metricsSummary(server.url);
    const exitCode = await server.stop();
    note(`server stopped, exit ${exitCode}`);

    const failed = result.errors + result.timeouts + result.non2xx;
    const jobsOk = finals.length === 2 && finals.every((job) => job.state === 'completed');
    const pass = failed === 0 && cacheBack && probeCached && jobsOk && exitCode === 0;
    const statuses = Object.entries(result.statusCodeStats ?? {})
      .map(([code, stat]) => `${code}: ${stat.count ?? 0}`)
      .join(', ');
    const lines = [
      '# Fault benchmark: Redis killed during load',
      '',
      'The service as its own process on the embedded model, with a throwaway redis-server (own port,',
      'append-only file fsynced always) for the cache, rate limits and the BullMQ job queue (in-process',
      `worker, concurrency 1). autocannon: ${connections} connections for ${duration} s over the load mix; Redis`,
      `SIGKILLed at ${killAt} s and restarted at ${restartAt} s. ${new Date().toISOString().slice(0, 16)} UTC,`,
      `${os.cpus().length} shared CPU cores.`,
      '',
      '## Result',
      '',
      '| | |',
      '|---|---|',
      `| verdict | **${pass ? 'pass' : 'FAIL'}** (0 failed requests, cache back, both jobs completed, clean exit) |`,
      `| requests | ${result.requests.total} (${result.requests.average.toFixed(0)} req/s) |`,
      `| failed | ${failed} (errors ${result.errors}, timeouts ${result.timeouts}, non-2xx ${result.non2xx}) |`,
      `| statuses | ${statuses} |`,
      `| latency p50 / p90 / p99 / max | ${result.latency.p50} / ${result.latency.p90} / ${result.latency.p99} / ${result.latency.max} ms |`,
      `| cache after restart | ok: ${cacheBack}; a new prompt is written to Redis and then hit: ${probeCached} |`,
      `| cache hit ratio (whole run) | ${(metricsAfter.cacheHitRatio * 100).toFixed(1)}% (before the recovery probe ${(metricsBefore.cacheHitRatio * 100).toFixed(1)}%) |`,
      `| jobs | ${finals.map((job) => `${job.state}${job.result ? ` (${job.result.stopReason})` : ''}`).join(', ')} |`,
      `| search submitted during the outage | ${submittedDuringOutage || 'no answer recorded'} |`,
      `| server RSS first / last / peak | ${fmtMiB(samples[0]?.rss ?? NaN)} / ${fmtMiB(samples.at(-1)?.rss ?? NaN)} / ${fmtMiB(Math.max(...samples.map((s) => s.rss)))} |`,
      `| server exit after SIGTERM | ${exitCode} |`,
      '',
      '## Timeline',
      '',
      '| second | event |',
      '|---:|---|',
      ...events,
      '',
      'Reproduce: `npx tsx bench/fault.ts` (options `--duration`, `--kill-at`, `--restart-at`, `--connections`).',
      '',
    ];
    mkdirSync(path.dirname(out), { recursive: true });
    writeFileSync(out, lines.join('\n'));
    console.log(lines.join('\n'));
    if (!pass) process.exitCode = 1;
  } catch (error) {
    console.error(server.log().slice(-3000));
    throw error;
  } finally {
    await server.stop();
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
