/**
 * `npm run collect -- DIR --name NAME` (src/bin/collect.ts) on a folder in the ImageFolder layout
 * (sub-folders are categories; a text file beside the images is not sent) and on one with a
 * manifest.csv: the service started on the same DATA_DIR serves the collection it built, with its
 * categories and captions. Bad arguments print the usage and exit 2.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import t from 'tap';
import { buildTestApp } from './helpers/app.js';
import { repoRoot } from './helpers/tiny-model.js';

const TOYWORLD = path.join(repoRoot, 'models/toyworld');
const work = mkdtempSync(path.join(os.tmpdir(), 'collect-cli-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));
const dataDir = path.join(work, 'data');

const square = (r: number, g: number, b: number) =>
  sharp({ create: { width: 48, height: 40, channels: 3, background: { r, g, b } } })
    .png()
    .toBuffer();

function collect(args: string[]): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/bin/collect.ts', ...args], {
      cwd: repoRoot,
      env: { ...process.env, MODEL_DIR: TOYWORLD, DATA_DIR: dataDir, ORT_PROVIDERS: 'cpu' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('close', (code) => resolve({ code, stderr, stdout }));
  });
}

const folder = path.join(work, 'pets');
const images: Record<string, Buffer> = {
  'red/a.png': await square(220, 30, 30),
  'red/b.png': await square(200, 20, 40),
  'blue/c.png': await square(30, 40, 220),
  'blue/deep/d.png': await square(10, 20, 180),
};
for (const [name, bytes] of Object.entries(images)) {
  mkdirSync(path.dirname(path.join(folder, name)), { recursive: true });
  writeFileSync(path.join(folder, name), bytes);
}
writeFileSync(path.join(folder, 'blue', 'notes.txt'), 'not an image');

t.test('bad arguments print the usage', async (t) => {
  const missing = await collect([folder]);
  t.equal(missing.code, 2, 'no --name: exit 2');
  t.match(missing.stderr, /usage: npm run collect -- DIR --name NAME/);
  const help = await collect(['--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /Sub-folder\s+names are categories/);
});

t.test('a folder in the ImageFolder layout becomes a collection the service serves', async (t) => {
  const run = await collect([folder, '--name', 'My pets']);
  t.equal(run.code, 0, run.stderr);
  t.match(run.stderr, /4 images indexed in 3 categories/);
  // The progress bar (stderr is not a terminal: a line per tenth), from 0 to all four images.
  t.match(run.stderr, /░{30} +0\.0% 0\/4 /, 'the progress bar starts at 0 of 4');
  t.match(run.stderr, /█{30} 100\.0% 4\/4 [\d.]+ images\/s/, 'and ends full at 4 of 4, with the rate');
  const app = await buildTestApp({ modelDir: TOYWORLD, dataDir });
  t.teardown(() => app.close());
  const info = await app.inject({ method: 'GET', url: '/v1/collections/my-pets' });
  t.equal(info.statusCode, 200, info.body);
  const body = info.json<{ images: number; categories: { name: string; count: number }[] }>();
  t.equal(body.images, 4, 'the four images, not the text file');
  t.same(
    Object.fromEntries(body.categories.map((c) => [c.name, c.count])),
    { blue: 1, deep: 1, red: 2 },
    'the folder holding an image is its category (blue/deep/d.png is a "deep"), one rule with archives',
  );
  const top = await app.inject({ method: 'GET', url: '/v1/neurons/0/top-images?collection=my-pets&k=4' });
  t.equal(top.statusCode, 200, top.body);
  const ranked = top.json<{ top: { name: string; value: number }[] }>().top;
  t.same(ranked.map((image) => image.name).sort(), Object.keys(images).sort(), 'named by their paths');
  for (let i = 1; i < ranked.length; i++) t.ok(ranked[i - 1].value >= ranked[i].value, 'ranked by value');
});

t.test('a manifest.csv gives categories and captions; adding to a collection adds images', async (t) => {
  const listed = path.join(work, 'listed');
  mkdirSync(listed, { recursive: true });
  writeFileSync(path.join(listed, 'x.png'), await square(240, 240, 20));
  writeFileSync(path.join(listed, 'y.png'), await square(20, 200, 20));
  writeFileSync(
    path.join(listed, 'manifest.csv'),
    'file,category,caption\nx.png,yellow,"a yellow square, bright"\ny.png,green,a green square\n',
  );
  const run = await collect([listed, '--name', 'My pets']);
  t.equal(run.code, 0, run.stderr);
  t.match(run.stderr, /adding to it/);
  const app = await buildTestApp({ modelDir: TOYWORLD, dataDir });
  t.teardown(() => app.close());
  const info = await app.inject({ method: 'GET', url: '/v1/collections/my-pets' });
  const body = info.json<{ images: number; categories: { name: string }[] }>();
  t.equal(body.images, 6, 'two more images');
  t.same(body.categories.map((c) => c.name).sort(), ['blue', 'deep', 'green', 'red', 'yellow']);
  const image = await app.inject({ method: 'GET', url: '/v1/collections/my-pets/images/4' });
  t.equal(image.statusCode, 200, image.body);
  t.match(image.json(), { category: 'yellow', caption: 'a yellow square, bright' });
});
