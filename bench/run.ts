/**
 * `npm run bench`: runs every benchmark one after the other (never in parallel: they would measure
 * each other). Each writes its results to bench/results/<name>.md; the README summarises them.
 * `npm run bench -- core words` runs only those.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../src/config.js';

const BENCHMARKS: Record<string, string[]> = {
  core: ['npx', 'tsx', 'bench/core.ts'],
  'text-encoder': ['bash', 'bench/text-encoder-rn50x4.sh'],
  'text-graph': ['bash', 'bench/text-graph-rn50x4.sh'],
  words: ['npx', 'tsx', 'bench/words.ts'],
  emotions: ['npx', 'tsx', 'bench/emotions.ts'],
  'cold-start': ['npx', 'tsx', 'bench/cold-start.ts'],
  search: ['npx', 'tsx', 'bench/search.ts'],
  load: ['npx', 'tsx', 'bench/load.ts'],
  http: ['npx', 'tsx', 'bench/http.ts'],
  // The cached-attribution latency rows alone, beside the bare Fastify floor (MODEL_DIR= another model).
  'http-latency': ['env', 'BENCH_HTTP_ROUNDS=0', 'npx', 'tsx', 'bench/http.ts'],
  'vision-trunk': ['bash', 'bench/vision-trunk-rn50x4.sh'],
  'whole-model': ['npx', 'tsx', 'bench/whole-model.ts'],
  fault: ['npx', 'tsx', 'bench/fault.ts'],
  'image-memory': ['npx', 'tsx', 'bench/image-memory.ts'],
  shutdown: ['npx', 'tsx', 'bench/shutdown.ts'],
  neighbours: ['npx', 'tsx', 'bench/neighbours.ts'],
  export: ['bash', 'bench/export-rn50x4.sh'],
};

const wanted = process.argv.slice(2).filter((arg) => arg !== '--');
const names = wanted.length > 0 ? wanted : Object.keys(BENCHMARKS);
let failed = 0;
for (const name of names) {
  const command = BENCHMARKS[name];
  if (!command) {
    console.error(`unknown benchmark ${name}; known: ${Object.keys(BENCHMARKS).join(', ')}`);
    process.exit(2);
  }
  if (!existsSync(path.join(REPO_ROOT, command.at(-1)!))) {
    console.error(`skipping ${name}: ${command.at(-1)} does not exist`);
    continue;
  }
  console.error(`\n=== ${name}: ${command.join(' ')}`);
  const result = spawnSync(command[0], command.slice(1), { cwd: REPO_ROOT, stdio: 'inherit' });
  if (result.status !== 0) {
    failed += 1;
    console.error(`${name} failed (exit ${result.status})`);
  }
}
process.exit(failed > 0 ? 1 : 0);
