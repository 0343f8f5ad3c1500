/**
 * A `src/bin/worker.ts` process for tests on a shared Redis: one process (node with tsx's loader, so
 * that SIGKILL kills the worker itself) in its own process group, stopped by the test's teardown or
 * when the test process exits. Its JSON log lines are collected as they arrive.
 */
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { spawnOwned } from '../../bench/lib/processes.js';
import { repoRoot } from './tiny-model.js';

export interface WorkerProcess {
  child: ChildProcess;
  lines: { msg?: string; job?: string; kind?: string; result?: { computed?: boolean } }[];
}

export function startWorker(env: NodeJS.ProcessEnv): WorkerProcess {
  const child = spawnOwned(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src/bin/worker.ts')], {
    cwd: repoRoot,
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: WorkerProcess['lines'] = [];
  let buffer = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    let end: number;
    while ((end = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + 1);
      try {
        lines.push(JSON.parse(line) as WorkerProcess['lines'][number]);
      } catch {
        lines.push({ msg: line });
      }
    }
  });
  return { child, lines };
}
