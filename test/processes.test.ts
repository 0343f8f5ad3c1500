/**
 * The processes tests and benchmarks start (bench/lib/processes.ts) do not outlive them: a throwaway
 * redis-server listens on 127.0.0.1 only and is gone once stopped, and the children of a process
 * that dies of SIGTERM (as a test file does when tap times it out) die with it.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ROOT, sleep, startRedis } from '../bench/lib/processes.js';

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function gone(pid: number, ms = 5000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (alive(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

/** The local addresses listening on `port` (IPv4 and IPv6), from /proc/net/tcp{,6}. */
function listeners(port: number): string[] {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  return ['/proc/net/tcp', '/proc/net/tcp6'].flatMap((file) =>
    readFileSync(file, 'utf8')
      .split('\n')
      .slice(1)
      .map((line) => line.trim().split(/\s+/))
      .filter((fields) => fields[3] === '0A' && fields[1]?.endsWith(`:${hexPort}`))
      .map((fields) => fields[1].split(':')[0]),
  );
}

t.test('a throwaway redis-server listens on 127.0.0.1 only, and stop() ends it', async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  t.same(listeners(redis.port), ['0100007F'], `only 127.0.0.1:${redis.port}`);
  await redis.stop();
  t.ok(await gone(redis.child.pid!), 'the process is gone');
});

t.test('children of a process killed with SIGTERM die with it', async (t) => {
  const script = [
    `const { spawnOwned } = await import(${JSON.stringify(path.join(ROOT, 'bench/lib/processes.ts'))});`,
    `const child = spawnOwned('sleep', ['60'], { stdio: 'ignore' });`,
    `console.log(child.pid);`,
    `setInterval(() => {}, 1000);`,
  ].join('\n');
  const parent = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.teardown(() => void parent.kill('SIGKILL'));
  const [line] = (await once(parent.stdout!, 'data')) as [Buffer];
  const pid = Number(line.toString().trim());
  t.ok(Number.isInteger(pid) && alive(pid), `the child (sleep 60, pid ${pid}) runs`);
  t.teardown(() => {
    if (alive(pid)) process.kill(pid, 'SIGKILL');
  });
  const exited = once(parent, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  parent.kill('SIGTERM');
  const [, signal] = await exited;
  t.equal(signal, 'SIGTERM', 'the parent still dies of the signal');
  t.ok(await gone(pid), 'and its child is gone');
});
