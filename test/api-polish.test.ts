/**
 * API polish (issue 21): validation messages that name what is allowed, non-integer neuron ids
 * refused, 415s that say what to send, `npm run index-words -- --help`, and npm commands without
 * the "Unknown project config" warning while onnxruntime-node's CUDA download stays off.
 */
import t from 'tap';
import type { InjectOptions } from 'fastify';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { buildTestApp } from './helpers/app.js';
import { repoRoot } from './helpers/tiny-model.js';

t.test('request errors', async (t) => {
  const app = await buildTestApp({ redisUrl: undefined });
  t.teardown(() => app.close());
  const last = app.clip.neuronCount - 1;
  const message = async (options: InjectOptions, status = 400) => {
    const response = await app.inject(options);
    t.equal(response.statusCode, status, JSON.stringify(options).slice(0, 120));
    return (response.json() as { message: string }).message;
  };

  t.test('enum and pattern errors name what is allowed', async (t) => {
    t.equal(await message({ url: '/v1/emotions/atlas?factors=3' }), 'factors must be 2 or 7');
    t.equal(await message({ url: '/v1/neurons/abc' }), `neuron id must be an integer from 0 to ${last}`);
    t.match(
      await message({
        method: 'POST',
        url: '/v1/emotions/fit',
        payload: { emotions: ['happy', 'sad'], model: 'forest' },
      }),
      /^model must be "one-vs-rest" or "multinomial"$/,
    );
    t.match(await message({ url: '/v1/jobs/a_b' }), /^job id must be/);
    t.notMatch(await message({ url: '/v1/emotions/atlas?factors=x' }), /union|Expected/);
  });

  t.test('a non-integer neuron id is a 400, not neuron 1', async (t) => {
    for (const url of ['/v1/neurons/1.5/top-words', '/v1/neurons/1.5/max-text', '/v1/neurons/1.5']) {
      t.match(await message({ url }), new RegExp(`^neuron id must be an integer from 0 to ${last}`), url);
    }
    t.match(await message({ url: '/v1/words/neighbors?word=red&k=2.5' }), /^k must be an integer/);
  });

  t.test('a 415 says what to send', async (t) => {
    const text = await message(
      { method: 'POST', url: '/v1/embed/text', payload: 'hi', headers: { 'content-type': 'text/plain' } },
      415,
    );
    t.match(text, /content-type: application\/json/);
    t.notMatch(text, /multipart/, 'a JSON-only route does not offer multipart');
    const image = await message(
      { method: 'POST', url: '/v1/embed/image', payload: '<a/>', headers: { 'content-type': 'text/xml' } },
      415,
    );
    t.match(image, /content-type: application\/json/);
    t.match(image, /multipart\/form-data/);
  });
});

t.test('npm run index-words -- --help prints usage; an ignored option says so', async (t) => {
  const run = (...args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src/bin/index-words.ts'), ...args], {
      cwd: repoRoot,
      encoding: 'utf8',
      timeout: 60_000,
    });
  const help = run('--help');
  t.equal(help.status, 0, help.stderr);
  t.match(help.stdout, /^usage: npm run index-words/);
  t.match(help.stdout, /--words FILE/);
  t.notMatch(help.stderr, /TypeError|at /);
  const ignored = run('--colour', 'red', '--help');
  t.equal(ignored.status, 0);
  t.match(ignored.stderr, /ignoring unknown option --colour/);
  t.match(ignored.stderr, /ignoring argument "red"/);
});

t.test('npm prints no "Unknown project config" warning; the CUDA download stays off', async (t) => {
  const npm = spawnSync('npm', ['pkg', 'get', 'name'], { cwd: repoRoot, encoding: 'utf8', timeout: 60_000 });
  t.equal(npm.status, 0);
  t.notMatch(npm.stderr, /Unknown (project|user|cli|env) config/);
  t.notOk(existsSync(path.join(repoRoot, '.npmrc')), 'no project .npmrc');
  // npm 11 runs a dependency's install scripts only when allowScripts approves it: onnxruntime-node's
  // (a CUDA provider download from NuGet) is denied, the others are approved; npm 10 reads
  // ONNXRUNTIME_NODE_INSTALL=skip where CI runs npm ci.
  const manifest = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as {
    allowScripts?: Record<string, boolean>;
  };
  t.equal(manifest.allowScripts?.['onnxruntime-node'], false);
  t.match(readFileSync(path.join(repoRoot, '.ci/run'), 'utf8'), /ONNXRUNTIME_NODE_INSTALL=skip npm ci/);
});
