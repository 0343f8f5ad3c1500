/**
 * Shutdown benchmark (issue 21, failure 2): SIGTERM while clients keep the service busy.
 *
 * For each setting and round, the service starts as its own process (bench/lib/processes.ts), C
 * keep-alive clients loop over the load bench's route mix (bench/lib/load.ts, preflighted) plus a
 * word query, and after `--warm` seconds (and once every client has had an answer, so that no
 * connection still waits in the kernel's backlog) the server gets SIGTERM; each client goes on until its
 * connection is refused. Every outcome is counted: 200, 503 (and whether it said Connection: close),
 * any other status, connection resets. Goal: 0 × 5xx other than 503, every 503 with Connection:
 * close, exit 0. Rows: the default drain (SHUTDOWN_DRAIN_MS=500) at 16 and 64 clients, and no drain
 * (SHUTDOWN_DRAIN_MS=0) for comparison. Results go to bench/results/shutdown.md.
 *
 *   npx tsx bench/shutdown.ts [--rounds 3] [--warm 3]
 */
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { preflight, routeMix, type MixEntry } from './lib/load.js';
import { ROOT, sleep, startServer } from './lib/processes.js';

function argument(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const rounds = Number(argument('rounds', '3'));
const warmSeconds = Number(argument('warm', '3'));
const out = path.resolve(ROOT, argument('out', 'bench/results/shutdown.md'));

interface Outcome {
  status: string;
  close: boolean;
  startedAfterSignal: boolean;
  endedAfterSignal: boolean;
}

function send(port: number, agent: http.Agent, entry: MixEntry): Promise<{ status: string; close: boolean }> {
  return new Promise((resolve) => {
    const body = entry.body ? JSON.stringify(entry.body()) : undefined;
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: entry.method,
        path: typeof entry.path === 'string' ? entry.path : entry.path(),
        agent,
        headers: body
          ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }
          : {},
      },
      (res) => {
        res.resume();
        res.on('end', () =>
          resolve({
            status: String(res.statusCode),
            close: res.headers.connection?.toLowerCase() === 'close',
          }),
        );
        res.on('error', (error: NodeJS.ErrnoException) =>
          resolve({ status: error.code ?? 'error', close: false }),
        );
      },
    );
    req.on('error', (error: NodeJS.ErrnoException) =>
      resolve({ status: error.code ?? 'error', close: false }),
    );
    req.end(body);
  });
}

interface Row {
  setting: string;
  clients: number;
  round: number;
  before: number;
  counts: Record<string, number>;
  inFlightAnswered: number;
  fiveHundreds: number;
  without503Close: number;
  resets: number;
  exitCode: number | null;
  exitMs: number;
}

async function round(setting: string, env: Record<string, string>, clients: number, n: number): Promise<Row> {
  const server = await startServer({ REDIS_URL: '', WARM_DEFAULT_FIT: 'false', ...env });
  const mix = await routeMix();
  mix.push({ name: 'word neighbours', method: 'GET', path: '/v1/words/neighbors?word=red&k=5' });
  const { kept, dropped } = await preflight(server.url, mix);
  if (dropped.length > 0) console.error(`dropped from the mix: ${dropped.join('; ')}`);
  const outcomes: Outcome[] = [];
  let signalledAt = 0;
  let next = 0;
  // Each client's connection accepted before the signal (see the warm-up below).
  const connected = new Set<number>();
  const loops = Array.from({ length: clients }, async (_, client) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (;;) {
        const startedAfterSignal = signalledAt > 0;
        const { status, close } = await send(server.port, agent, kept[next++ % kept.length]);
        outcomes.push({ status, close, startedAfterSignal, endedAfterSignal: signalledAt > 0 });
        if (status === '200') connected.add(client);
        if (status === 'ECONNREFUSED') return;
      }
    } finally {
      agent.destroy();
    }
  });
  // At least --warm seconds, and until every client has had an answer: on a busy machine a
  // connection can still wait in the kernel's backlog, where closing the port resets it before the
  // service has accepted it (the SIGTERM the benchmark studies is the one of a service in its stride).
  await sleep(warmSeconds * 1000);
  while (connected.size < clients) await sleep(50);
  const exited = new Promise<number | null>((resolve) => server.child.once('exit', (code) => resolve(code)));
  signalledAt = performance.now();
  server.child.kill('SIGTERM');
  const exitCode = await exited;
  const exitMs = performance.now() - signalledAt;
  await Promise.all(loops);
  const counts: Record<string, number> = {};
  for (const { status } of outcomes) counts[status] = (counts[status] ?? 0) + 1;
  const row: Row = {
    setting,
    clients,
    round: n,
    before: outcomes.filter((o) => !o.endedAfterSignal).length,
    counts,
    inFlightAnswered: outcomes.filter(
      (o) => !o.startedAfterSignal && o.endedAfterSignal && o.status === '200',
    ).length,
    fiveHundreds: outcomes.filter((o) => /^5/.test(o.status) && o.status !== '503').length,
    without503Close: outcomes.filter((o) => o.status === '503' && !o.close).length,
    resets: outcomes.filter((o) => !/^\d+$/.test(o.status) && o.status !== 'ECONNREFUSED').length,
    exitCode,
    exitMs,
  };
  console.error(JSON.stringify(row));
  return row;
}

const settings: [string, Record<string, string>, number][] = [
  ['SHUTDOWN_DRAIN_MS=500 (default)', {}, 16],
  ['SHUTDOWN_DRAIN_MS=500 (default)', {}, 64],
  ['SHUTDOWN_DRAIN_MS=0 (no drain)', { SHUTDOWN_DRAIN_MS: '0' }, 64],
];
const rows: Row[] = [];
for (const [setting, env, clients] of settings) {
  for (let n = 1; n <= rounds; n++) rows.push(await round(setting, env, clients, n));
}

const lines = [
  '# Shutdown: SIGTERM under load',
  '',
  `Run ${new Date().toISOString()} on ${process.platform}, node ${process.version}: the embedded model,`,
  `C keep-alive clients over the load bench's route mix and a word query, SIGTERM after ${warmSeconds} s,`,
  'each client going on until its connection is refused. "in flight" counts requests sent before the',
  'signal and answered 200 after it. Goal: 0 × 5xx but 503, every 503 with Connection: close, exit 0.',
  '',
  '| setting | clients | round | answered before the signal | all outcomes | in flight, answered 200 | 5xx but 503 | 503 without Connection: close | resets | exit (code, ms after SIGTERM) |',
  '|---|---|---|---|---|---|---|---|---|---|',
  ...rows.map((row) => {
    const all = Object.entries(row.counts)
      .map(([status, count]) => `${status}: ${count}`)
      .join(', ');
    return `| ${row.setting} | ${row.clients} | ${row.round} | ${row.before} | ${all} | ${row.inFlightAnswered} | ${row.fiveHundreds} | ${row.without503Close} | ${row.resets} | ${row.exitCode}, ${row.exitMs.toFixed(0)} ms |`;
  }),
  '',
];
writeFileSync(out, lines.join('\n'));
console.log(lines.join('\n'));
const failed = rows.some(
  (row) =>
    row.setting.includes('default') &&
    (row.fiveHundreds > 0 || row.without503Close > 0 || row.exitCode !== 0),
);
process.exit(failed ? 1 : 0);
