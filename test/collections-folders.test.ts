/**
 * Images from folders on the server (POST /v1/collections/{id}/directory, under COLLECTIONS_ROOT),
 * the one category rule of folders, archives and the CLI (src/collections/folder.ts), and the
 * per-owner limits (src/collections/quotas.ts): collections, images and bytes per API key, admin
 * keys exempt, each refusal naming its variable.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import t from 'tap';
import type { App } from '../src/app.js';
import { categoryOfPath, labelEntries, parseManifest, readFolder } from '../src/collections/folder.js';
import { DEFAULT_MODEL_DIR } from '../src/config.js';
import { buildTestApp } from './helpers/app.js';

const ADMIN = 'folders-test-admin';
const USER_A = 'folders-test-user-a';
const USER_B = 'folders-test-user-b';
const as = (key?: string) => (key ? { authorization: `Bearer ${key}` } : {});

const tmp = await mkdtemp(path.join(os.tmpdir(), 'collections-folders-'));
t.teardown(() => rm(tmp, { recursive: true, force: true }));

const solid = (r: number, g: number, b: number) =>
  sharp({ create: { width: 8, height: 8, channels: 3, background: { r, g, b } } })
    .png()
    .toBuffer();

// COLLECTIONS_ROOT/
//   pets/red/a.png  pets/red/b.png  pets/blue/deep/c.png  pets/notes.txt  pets/link.png -> outside
//   listed/x.png  listed/y.png  listed/manifest.csv
//   escape -> ../outside    badlist/manifest.csv (names ../../outside/x.png)    file.png
// outside/x.png
const root = path.join(tmp, 'root');
const outside = path.join(tmp, 'outside');
const files: Record<string, Buffer | string> = {
  'pets/red/a.png': await solid(220, 30, 30),
  'pets/red/b.png': await solid(200, 20, 40),
  'pets/blue/deep/c.png': await solid(10, 20, 180),
  'pets/notes.txt': 'not an image',
  'listed/x.png': await solid(240, 240, 20),
  'listed/y.png': await solid(20, 200, 20),
  'listed/manifest.csv': 'file,category,caption\nx.png,yellow,"a yellow square, bright"\ny.png,green,\n',
  'badlist/manifest.csv': 'file,category\n../../outside/x.png,stolen\n',
  'file.png': await solid(1, 2, 3),
};
for (const [name, bytes] of Object.entries(files)) {
  mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
  writeFileSync(path.join(root, name), bytes);
}
mkdirSync(outside, { recursive: true });
writeFileSync(path.join(outside, 'x.png'), await solid(0, 0, 0));
symlinkSync(path.join(outside, 'x.png'), path.join(root, 'pets', 'link.png'));
symlinkSync(outside, path.join(root, 'escape'));

// Built before the first subtest: a top-level await after it would let tap end this file's test
// when that subtest finishes first (on a slow machine the later subtests were then never run).
const app = await appWith({
  COLLECTIONS_ROOT: root,
  COLLECTION_MAX_COLLECTIONS_PER_OWNER: '2',
  COLLECTION_MAX_IMAGES_PER_OWNER: '3',
  COLLECTION_MAX_BYTES_PER_OWNER: '2000',
});
t.teardown(() => app.close());

t.test('the category rule: the folder holding a file, or a manifest.csv', async (t) => {
  t.equal(categoryOfPath('cat/1.png'), 'cat');
  t.equal(categoryOfPath('pets/cat/1.png'), 'cat', 'inside a wrapping folder too');
  t.equal(categoryOfPath('1.png'), null, 'none at the top');
  t.same(parseManifest('File,Caption\n"a,b.png","say ""hi""\nthere"\n\nc.png,\n'), [
    { file: 'a,b.png', category: null, caption: 'say "hi"\nthere' },
    { file: 'c.png', category: null, caption: null },
  ]);
  t.throws(() => parseManifest('name,category\na.png,x\n'), { statusCode: 400, message: /"file" column/ });
  const entries = [
    { name: 'pets/red/a.png', bytes: Buffer.from('a') },
    { name: 'b.png', bytes: Buffer.from('b') },
  ];
  t.same(
    labelEntries(entries).map(({ name, category }) => [name, category]),
    [
      ['pets/red/a.png', 'red'],
      ['b.png', null],
    ],
  );
  const listed = [...entries, { name: 'manifest.csv', bytes: Buffer.from('file,category\nb.png,bee\n') }];
  t.same(
    labelEntries(listed).map(({ name, category }) => [name, category]),
    [['b.png', 'bee']],
    'a manifest lists the files it adds',
  );
  t.throws(() => labelEntries([{ name: 'manifest.csv', bytes: Buffer.from('file\nmissing.png\n') }]), {
    statusCode: 400,
    message: /"missing\.png", which is not in the archive/,
  });
  const cli = await readFolder(path.join(root, 'pets'));
  t.same(
    cli.images.map(({ name, category }) => [name, category]),
    [
      ['blue/deep/c.png', 'deep'],
      ['link.png', null],
      ['red/a.png', 'red'],
      ['red/b.png', 'red'],
    ],
    'without a root (the CLI) links are followed',
  );
  const served = await readFolder(path.join(root, 'pets'), { root });
  t.notOk(
    served.images.some((image) => image.name === 'link.png'),
    'under a root, links are not followed',
  );
  t.equal(served.ignored, 2, 'the text file and the link');
});

/** Builds the app with variables set only while its plugins read them. */
async function appWith(env: Record<string, string>): Promise<App> {
  const all = { WORD_INDEX_AUTOBUILD: 'false', ...env };
  const saved = Object.fromEntries(Object.keys(all).map((name) => [name, process.env[name]]));
  Object.assign(process.env, all);
  try {
    return await buildTestApp({
      modelDir: DEFAULT_MODEL_DIR,
      dataDir: path.join(tmp, 'data'),
      apiKeys: [USER_A, USER_B],
      adminApiKeys: [ADMIN],
      maxEventLoopDelayMs: 0, // no back-pressure 503s on a loaded machine
    });
  } finally {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

const create = (name: string, key: string) =>
  app.inject({ method: 'POST', url: '/v1/collections', headers: as(key), payload: { name } });

/** POST …/directory with the admin key, another key, or none (null). */
const fromFolder = (id: string, directory: unknown, key: string | null = ADMIN) =>
  app.inject({
    method: 'POST',
    url: `/v1/collections/${id}/directory`,
    headers: as(key ?? undefined),
    payload: { directory },
  });

function multipart(files: { name: string; bytes: Buffer; field?: string }[]) {
  const boundary = 'folders-test-boundary';
  const parts = files.map(({ name, bytes, field = 'image' }) =>
    Buffer.concat([
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="${field}"; filename="${name}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
      ),
      bytes,
      Buffer.from('\r\n'),
    ]),
  );
  return {
    payload: Buffer.concat([...parts, Buffer.from(`--${boundary}--\r\n`)]),
    'content-type': `multipart/form-data; boundary=${boundary}`,
  };
}

const upload = (id: string, key: string, files: { name: string; bytes: Buffer; field?: string }[]) => {
  const { payload, 'content-type': contentType } = multipart(files);
  return app.inject({
    method: 'POST',
    url: `/v1/collections/${id}/images`,
    headers: { ...as(key), 'content-type': contentType },
    payload,
  });
};

interface View {
  images: number;
  categories: { name: string; count: number }[];
  build: { state: string };
}

async function built(id: string): Promise<View> {
  await app.collections.settled(id);
  for (;;) {
    const view = (
      await app.inject({ method: 'GET', url: `/v1/collections/${id}`, headers: as(ADMIN) })
    ).json<View>();
    if (view.build.state !== 'running' && view.build.state !== 'queued') return view;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

t.test('a folder under COLLECTIONS_ROOT: sub-folders are categories', async (t) => {
  t.equal((await create('Server pets', ADMIN)).statusCode, 201);
  const answer = await fromFolder('server-pets', 'pets');
  t.equal(answer.statusCode, 202, answer.body);
  t.match(answer.json(), { collection: 'server-pets', accepted: 3, manifest: false, ignored: 2 });
  const view = await built('server-pets');
  t.match(view, { images: 3, build: { state: 'completed' } });
  t.same(
    Object.fromEntries(view.categories.map((c) => [c.name, c.count])),
    { red: 2, deep: 1 },
    'the folder holding each image (the link and the text file are not added)',
  );
  const image = await app.inject({
    method: 'GET',
    url: '/v1/collections/server-pets/images/0',
    headers: as(ADMIN),
  });
  t.match(image.json(), { name: 'blue/deep/c.png', category: 'deep' });
});

t.test('a folder with a manifest.csv, named by its absolute path', async (t) => {
  t.equal((await create('Server listed', ADMIN)).statusCode, 201);
  const answer = await fromFolder('server-listed', path.join(root, 'listed'));
  t.equal(answer.statusCode, 202, answer.body);
  t.match(answer.json(), { accepted: 2, manifest: true });
  const view = await built('server-listed');
  t.same(view.categories.map((c) => c.name).sort(), ['green', 'yellow']);
  const x = await app.inject({
    method: 'GET',
    url: '/v1/collections/server-listed/images/0',
    headers: as(ADMIN),
  });
  t.match(x.json(), { name: 'x.png', category: 'yellow', caption: 'a yellow square, bright' });
});

t.test('refused folders', async (t) => {
  const cases: [string, unknown, string | null, number, RegExp][] = [
    ['no key', 'pets', null, 401, /admin key/],
    ['a read key', 'pets', USER_A, 403, /admin routes/],
    ['..', '../outside', ADMIN, 403, /outside COLLECTIONS_ROOT/],
    ['an absolute path elsewhere', outside, ADMIN, 403, /outside COLLECTIONS_ROOT/],
    ['a link out of the root', 'escape', ADMIN, 403, /through a link.*COLLECTIONS_ROOT/],
    ['a manifest naming a file outside', 'badlist', ADMIN, 403, /named in manifest\.csv.*COLLECTIONS_ROOT/],
    ['a missing folder', 'no-such-folder', ADMIN, 404, /not found under COLLECTIONS_ROOT/],
    ['a file', 'file.png', ADMIN, 400, /not a directory/],
    ['an empty name', '', ADMIN, 400, /directory/],
  ];
  for (const [what, directory, key, status, message] of cases) {
    const answer = await fromFolder('server-pets', directory, key);
    t.equal(answer.statusCode, status, `${what}: ${answer.body}`);
    t.match(answer.json().message, message, what);
  }
  const unknown = await fromFolder('no-such-collection', 'pets');
  t.equal(unknown.statusCode, 404, unknown.body);
  const extra = await app.inject({
    method: 'POST',
    url: '/v1/collections/server-pets/directory',
    headers: as(ADMIN),
    payload: { directory: 'pets', recursive: true },
  });
  t.equal(extra.statusCode, 400, extra.body);
  t.match(extra.json().message, /recursive/);

  // Unset, the feature is off (the setting is read at start; here it is switched on the service).
  const { settings } = app.collections;
  settings.root = null;
  t.teardown(() => {
    settings.root = root;
  });
  const off = await fromFolder('server-pets', 'pets');
  t.equal(off.statusCode, 403, off.body);
  t.match(off.json().message, /set COLLECTIONS_ROOT/);
});

t.test('an archive with a manifest.csv at its top gives categories and captions', async (t) => {
  t.equal((await create('Listed archive', ADMIN)).statusCode, 201);
  const archive = execFileSync('tar', [
    '-cz',
    '-C',
    path.join(root, 'listed'),
    'manifest.csv',
    'x.png',
    'y.png',
  ]);
  const answer = await upload('listed-archive', ADMIN, [
    { name: 'listed.tar.gz', bytes: archive, field: 'archive' },
  ]);
  t.equal(answer.statusCode, 202, answer.body);
  const view = await built('listed-archive');
  t.same(view.categories.map((c) => c.name).sort(), ['green', 'yellow']);
  const x = await app.inject({
    method: 'GET',
    url: '/v1/collections/listed-archive/images/0',
    headers: as(ADMIN),
  });
  t.match(x.json(), { name: 'x.png', category: 'yellow', caption: 'a yellow square, bright' });
});

t.test('per-owner limits: collections, images and bytes per API key; admins exempt', async (t) => {
  t.equal((await create('A one', USER_A)).statusCode, 201);
  t.equal((await create('A two', USER_A)).statusCode, 201);
  const third = await create('A three', USER_A);
  t.equal(third.statusCode, 403, third.body);
  t.match(third.json().message, /limit is 2 per API key \(COLLECTION_MAX_COLLECTIONS_PER_OWNER\)/);

  const red = await solid(250, 0, 0);
  const green = await solid(0, 250, 0);
  const blue = await solid(0, 0, 250);
  const grey = await solid(128, 128, 128);
  t.equal(
    (
      await upload('a-one', USER_A, [
        { name: 'r.png', bytes: red },
        { name: 'g.png', bytes: green },
      ])
    ).statusCode,
    202,
  );
  t.equal((await upload('a-two', USER_A, [{ name: 'b.png', bytes: blue }])).statusCode, 202);
  const fourth = await upload('a-two', USER_A, [{ name: 'grey.png', bytes: grey }]);
  t.equal(fourth.statusCode, 413, fourth.body);
  t.match(
    fourth.json().message,
    /would hold 4 images .*limit is 3 per API key \(COLLECTION_MAX_IMAGES_PER_OWNER\)/,
  );

  const other = await upload('a-one', USER_B, [{ name: 'grey.png', bytes: grey }]);
  t.equal(other.statusCode, 403, other.body);
  t.match(other.json().message, /only its owner \(or an admin key\) may add images/);
  const byAdmin = await upload('a-two', ADMIN, [{ name: 'grey.png', bytes: grey }]);
  t.equal(byAdmin.statusCode, 202, `an admin key is not held to the owner's limits: ${byAdmin.body}`);

  t.equal((await create('B one', USER_B)).statusCode, 201);
  // Pseudo-random pixels (a linear congruential generator's high bytes), which PNG cannot compress.
  let state = 12345;
  const pixels = Buffer.from(
    Array.from({ length: 32 * 32 * 3 }, () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) >>> 24),
  );
  const noisy = await sharp(pixels, { raw: { width: 32, height: 32, channels: 3 } })
    .png()
    .toBuffer();
  t.ok(noisy.byteLength > 2000, `a ${noisy.byteLength}-byte image`);
  const big = await upload('b-one', USER_B, [{ name: 'noise.png', bytes: noisy }]);
  t.equal(big.statusCode, 413, big.body);
  t.match(big.json().message, /limit is 2000 bytes per API key \(COLLECTION_MAX_BYTES_PER_OWNER\)/);

  for (const name of ['Admin one', 'Admin two', 'Admin three']) {
    t.equal((await create(name, ADMIN)).statusCode, 201, `${name}: admins are exempt`);
  }
  await built('a-one');
  await built('a-two');
  const removed = await app.inject({ method: 'DELETE', url: '/v1/collections/a-two', headers: as(USER_A) });
  t.equal(removed.statusCode, 204);
  t.equal((await create('A three', USER_A)).statusCode, 201, 'a deleted collection frees its place');
});
