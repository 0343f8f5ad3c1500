/**
 * Processes that benchmarks and tests start: the service (`node --import tsx src/bin/server.ts`), its
 * search workers, throwaway redis-servers. Every one binds 127.0.0.1, runs in a process group of its
 * own (so a stop reaches whatever it started) and is remembered until it exits: when this process
 * exits, or dies of SIGINT, SIGTERM or SIGHUP (a test file tap times out), every child still alive
 * is killed with its group. A test stops its children with t.teardown as well, so they are gone also
 * when it fails; `scripts/check-leftovers.sh` proves after a suite run that nothing is left.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A port nobody listens on now, on 127.0.0.1. */
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

const live = new Set<ChildProcess>();

/** Kills a child's whole process group at once (it leads its group: spawnOwned detaches it). */
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

function killAll(): void {
  for (const child of live) {
    killGroup(child, 'SIGCONT'); // a child stopped with SIGSTOP (a hung Redis) dies too
    killGroup(child, 'SIGKILL');
  }
}

let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      killAll();
      // Then die of the signal as before: with this listener gone, the default (or tap's own
      // handler, which re-raises it) takes over.
      process.removeListener(signal, onSignal);
      process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

/** spawn, in a process group of its own, remembered until it exits (see the top of this file). */
export function spawnOwned(
  command: string,
  args: readonly string[],
  options: SpawnOptions = {},
): ChildProcess {
  hookExit();
  const child = spawn(command, args, { ...options, detached: true });
  live.add(child);
  child.once('exit', () => live.delete(child));
  child.once('error', () => live.delete(child));
  return child;
}

/**
 * Stops a child started by spawnOwned: `signal` to its group, SIGKILL after `graceMs`. Resolves with
 * its exit code (null when killed by a signal) once it has exited.
 */
export async function stopProcess(
  child: ChildProcess,
  signal: NodeJS.Signals = 'SIGTERM',
  graceMs = 10_000,
): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  killGroup(child, 'SIGCONT');
  killGroup(child, signal);
  const timer = setTimeout(() => killGroup(child, 'SIGKILL'), graceMs);
  try {
    return await exited;
  } finally {
    clearTimeout(timer);
  }
}

/** Whether something answers a TCP connection on 127.0.0.1:port. */
function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.end();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

export interface RedisProcess {
  child: ChildProcess;
  port: number;
  url: string;
  /** Stops it (SIGKILL: a throwaway Redis has nothing to save) and waits for its exit. */
  stop: () => Promise<void>;
}

/**
 * A throwaway redis-server on 127.0.0.1 (a free port unless `port`), nothing saved unless `args` say
 * otherwise; resolves once it accepts connections.
 */
export async function startRedis(
  options: { port?: number; args?: readonly string[] } = {},
): Promise<RedisProcess> {
  const port = options.port ?? (await freePort());
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  const child = spawnOwned('redis-server', [...args, ...(options.args ?? []), '--daemonize', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const stop = async () => void (await stopProcess(child, 'SIGKILL'));
  const deadline = Date.now() + 15_000;
  while (!(await answers(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`redis-server on port ${port} did not start:\n${output}`);
    }
    await sleep(25);
  }
  return { child, port, url: `redis://127.0.0.1:${port}`, stop };
}

export interface ServerProcess {
  child: ChildProcess;
  pid: number;
  port: number;
  url: string;
  log: () => string;
  /** SIGTERM (the service's graceful shutdown), SIGKILL after 15 s; the exit code, null if killed. */
  stop: () => Promise<number | null>;
}

/**
 * Starts the service as its own process (node with tsx's loader, so that signals reach the server
 * itself) on 127.0.0.1 and a free port, and waits for /health.
 */
export async function startServer(env: Record<string, string>): Promise<ServerProcess> {
  const port = await freePort();
  const child = spawnOwned(process.execPath, ['--import', 'tsx', 'src/bin/server.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      PORT: String(port),
      LOG_LEVEL: 'warn',
      ORT_PROVIDERS: 'cpu',
      RATE_LIMIT_PER_MINUTE: '10000000',
      // Not the probe collection's background build (2,290 renders), unless a caller asks for it.
      COLLECTION_PROBE: 'false',
      ...env,
      HOST: '127.0.0.1',
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
  const stop = () => stopProcess(child, 'SIGTERM', 15_000);
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the server exited:\n${log.slice(-3000)}`);
    if (Date.now() > deadline) {
      await stopProcess(child, 'SIGKILL');
      throw new Error(`the server did not answer /health:\n${log.slice(-3000)}`);
    }
    try {
      if ((await fetch(`${url}/health`)).ok) break;
    } catch {
      // not listening yet
    }
    await sleep(200);
  }
  return { child, pid: child.pid!, port, url, log: () => log, stop };
}

/** Resident memory of a process in bytes (VmRSS of /proc/<pid>/status). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
  return match ? Number(match[1]) * 1024 : NaN;
}
