/**
 * No container engine runs here, so the Dockerfile and the compose file are checked for the
 * structure a GPU deployment relies on.
 */
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { parse } from 'yaml';

const dockerfile = readFileSync('Dockerfile', 'utf8');
const instructions = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((line) => line.trim())
  .filter((line) => line !== '' && !line.startsWith('#'));
const all = (keyword: string) => instructions.filter((line) => line.startsWith(`${keyword} `));

t.test('Dockerfile: CUDA 12 runtime with cuDNN, Node 20, CUDA provider installed', async (t) => {
  const bases = all('FROM').map((line) => line.split(/\s+/)[1]);
  t.match(
    bases.at(-1),
    /^nvidia\/cuda:12\.[\d.]+-cudnn\d*-runtime-/,
    'final stage on a CUDA 12 cuDNN runtime',
  );
  t.ok(
    bases.some((base) => /^node:20\b/.test(base)),
    'Node 20 comes from the official image',
  );
  const install = all('RUN').find((line) => line.includes('npm ci'));
  t.ok(install, 'dependencies installed with npm ci');
  t.match(install, /ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci/, 'the CUDA execution provider install is on');
  t.match(install, /ONNXRUNTIME_NODE_INSTALL=cuda12 node script\/install/, 'also where npm skips the script');
  t.match(install, /--omit=dev/);
  t.ok(existsSync('package-lock.json'), 'npm ci needs the lock file');
});

t.test('Dockerfile: non-root, health check, model volume, entry point', async (t) => {
  const user = all('USER').at(-1);
  t.ok(user, 'a USER instruction');
  t.notMatch(user, /^USER\s+(root|0)\b/, 'not root');
  const healthcheck = all('HEALTHCHECK').at(-1);
  t.match(healthcheck, /\/health/, 'HEALTHCHECK probes /health');
  t.match(all('VOLUME').join(' '), /\/models/, 'model directories on a volume');
  t.match(all('ENV').join(' '), /ORT_PROVIDERS=cuda,cpu/);
  const cmd = all('CMD').at(-1) ?? '';
  const entry = /"(src\/[\w/.-]+\.ts)"/.exec(cmd)?.[1];
  t.ok(entry && existsSync(entry), `CMD runs a file that exists (${entry})`);
  for (const copy of all('COPY').filter((line) => !line.includes('--from'))) {
    const sources = copy.split(/\s+/).slice(1, -1);
    for (const source of sources) t.ok(existsSync(source), `COPY source ${source} exists`);
  }
});

t.test('package.json keeps the CUDA download off outside Docker', async (t) => {
  const manifest = JSON.parse(readFileSync('package.json', 'utf8')) as {
    allowScripts?: Record<string, boolean>;
  };
  t.equal(
    manifest.allowScripts?.['onnxruntime-node'],
    false,
    "npm 11 skips onnxruntime-node's install script",
  );
});

t.test('docker-compose.yml: service, Redis and two workers on the GPU', async (t) => {
  const compose = parse(readFileSync('docker-compose.yml', 'utf8')) as {
    services: Record<string, Record<string, unknown>>;
  };
  const { services } = compose;
  t.ok(services.redis, 'a redis service');
  t.match(String(services.redis.image), /^redis:/);
  const api = services.api;
  t.ok(api, 'an api service');
  const env = (service: Record<string, unknown>) => service.environment as Record<string, string>;
  t.match(env(api).REDIS_URL, /^redis:\/\/redis:6379/);
  t.ok(Array.isArray(api.ports) && (api.ports as string[]).some((port) => port.endsWith(':8080')));
  const workers = Object.entries(services).filter(([name]) => name.startsWith('worker'));
  const replicas = workers.reduce(
    (sum, [, service]) => sum + Number((service.deploy as { replicas?: number } | undefined)?.replicas ?? 1),
    0,
  );
  t.equal(replicas, 2, 'two workers');
  for (const [name, service] of workers) {
    t.match(JSON.stringify(service.command), /src\/bin\/worker\.ts/, `${name} runs the worker entry point`);
    t.match(env(service).REDIS_URL, /^redis:\/\/redis:6379/, `${name} shares the queue`);
  }
  for (const [name, service] of [['api', api], ...workers] as [string, Record<string, unknown>][]) {
    t.match(JSON.stringify(service.deploy), /"driver":"nvidia"/, `${name} reserves a GPU`);
  }
});
