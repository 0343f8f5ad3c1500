/**
 * The embedded model's probe collection (models/toyworld/probe.tar.gz, src/collections/probe.ts):
 * after the app starts on an empty DATA_DIR, the collection `probe` is listed, builds to every
 * render of the archive with the categories its manifest gives (read here by Python's csv and
 * tarfile modules, not by the service's reader), its categories are the world's concepts
 * (tools/toyworld/world.py), and neurons labelled in neurons.json rank their own concept first.
 * It belongs to the service: other clients may neither delete it nor add to it. Installed again (as
 * at the next start on the same DATA_DIR) it is kept; a probe of another model directory (another
 * sha256 of clip.json, as another probe file makes it) is replaced.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import t from 'tap';
import type { App } from '../src/app.js';
import { installProbe } from '../src/collections/probe.js';
import { DEFAULT_MODEL_DIR } from '../src/config.js';
import { buildTestApp } from './helpers/app.js';
import { repoRoot } from './helpers/tiny-model.js';

const PYTHON = '/usr/bin/python3';
const ADMIN = 'probe-test-admin-key';
const USER = 'probe-test-user-key';

const tmp = await mkdtemp(path.join(os.tmpdir(), 'collections-probe-'));
t.teardown(() => rm(tmp, { recursive: true, force: true }));

/** The app with the probe on (buildTestApp turns it off) and variables set while plugins read them. */
async function appOn(modelDir: string, dataDir: string): Promise<App> {
  const saved = process.env.WORD_INDEX_AUTOBUILD;
  process.env.WORD_INDEX_AUTOBUILD = 'false';
  try {
    return await buildTestApp({
      modelDir,
      dataDir,
      collectionProbe: true,
      maxEventLoopDelayMs: 0, // no back-pressure 503s on a loaded machine
      apiKeys: [USER],
      adminApiKeys: [ADMIN],
    });
  } finally {
    if (saved === undefined) delete process.env.WORD_INDEX_AUTOBUILD;
    else process.env.WORD_INDEX_AUTOBUILD = saved;
  }
}

interface View {
  id: string;
  images: number;
  pending: number;
  complete: boolean;
  categories: { name: string; count: number }[];
  build: { state: string; jobId: string | null; skipped: unknown[]; duplicates: unknown[] };
}

const as = (key: string) => ({ authorization: `Bearer ${key}` });

/** Polls the probe until its build has finished (no time limit here: tap's timeout bounds it). */
async function built(app: App): Promise<View> {
  for (;;) {
    const response = await app.inject({ method: 'GET', url: '/v1/collections/probe', headers: as(USER) });
    if (response.statusCode === 200) {
      const view = response.json<View>();
      if (view.build.state !== 'idle' && view.build.state !== 'running' && view.build.state !== 'queued') {
        return view;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Category counts of an archive's manifest.csv, by Python's tarfile and csv. */
function manifestCounts(archive: string): Record<string, number> {
  const script = [
    'import collections, csv, io, json, sys, tarfile',
    'with tarfile.open(sys.argv[1]) as tar:',
    '    text = tar.extractfile("manifest.csv").read().decode("utf-8")',
    'rows = list(csv.DictReader(io.StringIO(text)))',
    'print(json.dumps(collections.Counter(row["category"] for row in rows)))',
  ].join('\n');
  return JSON.parse(execFileSync(PYTHON, ['-c', script, archive], { encoding: 'utf8' })) as Record<
    string,
    number
  >;
}

const dataDir = path.join(tmp, 'data');
const app = await appOn(DEFAULT_MODEL_DIR, dataDir);
t.teardown(() => app.close());

t.test('after start the probe collection is listed and builds to every render of the archive', async (t) => {
  const listed = await app.inject({ method: 'GET', url: '/v1/collections', headers: as(USER) });
  t.equal(listed.statusCode, 200, listed.body);
  const list = listed.json<{ collections: { id: string }[] }>();
  t.ok(
    list.collections.some((c) => c.id === 'probe'),
    'listed right after start',
  );
  const view = await built(app);
  const expected = manifestCounts(path.join(DEFAULT_MODEL_DIR, 'probe.tar.gz'));
  const total = Object.values(expected).reduce((a, b) => a + b, 0);
  t.equal(total, 2290, 'the archive holds 2,290 renders');
  t.match(view, { build: { state: 'completed' }, complete: true, pending: 0, images: total });
  t.same(view.build.skipped, [], 'every render decodes');
  t.same(view.build.duplicates, [], 'no two renders are the same');
  t.same(
    Object.fromEntries(view.categories.map((c) => [c.name, c.count])),
    expected,
    'the categories and counts of the manifest',
  );
  const words = JSON.parse(
    execFileSync(
      PYTHON,
      ['-c', 'import json; from tools.toyworld import world; print(json.dumps(world.ALL_WORDS))'],
      { cwd: repoRoot, encoding: 'utf8' },
    ),
  ) as string[];
  t.same(
    view.categories.map((c) => c.name).sort(),
    [...words].sort(),
    'the categories are the concepts: every word of the world (colours, shapes, expressions among them)',
  );
  const image = await app.inject({ method: 'GET', url: '/v1/collections/probe/images/0', headers: as(USER) });
  t.match(image.json(), {
    name: 'colour-patch/red/000.webp',
    category: 'red',
    caption: 'colour: a red patch',
  });
  const thumbnail = await app.inject({
    method: 'GET',
    url: '/v1/collections/probe/images/0/thumbnail',
    headers: as(USER),
  });
  t.equal(thumbnail.headers['content-type'], 'image/png');
});

t.test('labelled neurons rank their own concept first on the probe', async (t) => {
  await built(app);
  const catalogue = JSON.parse(readFileSync(path.join(DEFAULT_MODEL_DIR, 'neurons.json'), 'utf8')) as Record<
    string,
    { label: string; family: string; score: number }
  >;
  const topImages = async (neuron: number, by = 'mean') =>
    (
      await app.inject({
        method: 'GET',
        url: `/v1/neurons/${neuron}/top-images?collection=probe&k=12&bins=0&by=${by}`,
        headers: as(USER),
      })
    ).json<{ top: { category: string; position?: { x: number; y: number } }[] }>().top;
  const topCategory = async (neuron: number) =>
    (
      await app.inject({
        method: 'GET',
        url: `/v1/neurons/${neuron}/distribution?collection=probe`,
        headers: as(USER),
      })
    ).json<{ categories: { category: string }[] }>().categories[0].category;

  // Neuron 182 is labelled "red" (score 0.91): its twelve top images are red patches or words.
  t.equal(catalogue['182'].label, 'red');
  t.equal(await topCategory(182), 'red');
  const red = await topImages(182);
  t.equal(red.filter((image) => image.category === 'red').length, 12, 'all twelve top images are "red"');
  const byMax = await topImages(182, 'max');
  t.ok(
    byMax.every((image) => image.position !== undefined),
    'by max: each with the cell of its maximum',
  );
  // Neuron 49, "happy" (0.94): happy faces (measured 11 of 12; one heart).
  t.equal(catalogue['49'].label, 'happy');
  t.equal(await topCategory(49), 'happy');
  t.ok((await topImages(49)).filter((image) => image.category === 'happy').length >= 10);

  // Over the well-labelled picture neurons (score ≥ 0.9, colour, shape and expression: 135 of them)
  // the label is the top category for 119 (measured); at least 80% must hold.
  const strong = Object.entries(catalogue).filter(
    ([, entry]) => entry.score >= 0.9 && entry.family !== 'word',
  );
  let agree = 0;
  for (const [id, entry] of strong) if ((await topCategory(Number(id))) === entry.label) agree++;
  t.equal(strong.length, 135);
  t.ok(agree >= 0.8 * strong.length, `${agree} of ${strong.length} rank their label first`);
});

t.test('the probe belongs to the service', async (t) => {
  const remove = await app.inject({ method: 'DELETE', url: '/v1/collections/probe', headers: as(USER) });
  t.equal(remove.statusCode, 403, remove.body);
  t.match(remove.json().message, /only its owner \(or an admin key\)/);
  const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#f00' } })
    .png()
    .toBuffer();
  const boundary = 'probe-test-boundary';
  const body = Buffer.concat([
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\nContent-Type: image/png\r\n\r\n`,
    ),
    png,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  const add = await app.inject({
    method: 'POST',
    url: '/v1/collections/probe/images',
    headers: { ...as(USER), 'content-type': `multipart/form-data; boundary=${boundary}` },
    payload: body,
  });
  t.equal(add.statusCode, 403, add.body);
  t.match(add.json().message, /add images/);
});

t.test('installed again: kept for this model, replaced when it is another model’s', async (t) => {
  const before = await built(app);
  const log = { info: () => undefined, warn: () => undefined };
  const again = await installProbe(app.collections, app.clip, log);
  t.equal(again.outcome, 'ready', 'kept (as at the next start on the same DATA_DIR)');
  t.equal((await built(app)).build.jobId, before.build.jobId, 'not rebuilt');

  // The probe as another model directory (another sha256 of clip.json) left it...
  const { store } = app.collections;
  const manifest = await store.manifest('probe');
  if (!manifest) throw new Error('no probe');
  await store.writeManifest({ ...manifest, model: { ...manifest.model, sha256: 'f'.repeat(64) } });
  const list = await app.inject({ method: 'GET', url: '/v1/collections', headers: as(USER) });
  t.notOk(
    list.json<{ collections: { id: string }[] }>().collections.some((c) => c.id === 'probe'),
    'another model’s probe is not listed',
  );
  // ... is replaced by this model's (here a small probe of two renders in folders, no manifest.csv).
  const small = path.join(tmp, 'small-model');
  const folder = path.join(tmp, 'small-probe');
  for (const [name, colour] of Object.entries({ red: '#d71920', blue: '#194bd7' })) {
    mkdirSync(path.join(folder, name), { recursive: true });
    writeFileSync(
      path.join(folder, name, 'a.png'),
      await sharp({ create: { width: 64, height: 64, channels: 3, background: colour } })
        .png()
        .toBuffer(),
    );
  }
  mkdirSync(small, { recursive: true });
  execFileSync('tar', ['-czf', path.join(small, 'probe.tar.gz'), '-C', folder, 'red/a.png', 'blue/a.png']);
  const model = {
    sha256: app.clip.sha256,
    directory: { dir: small, manifest: { files: { 'probe.tar.gz': '' } } },
  };
  // A shutdown while it is staged (an aborted signal here) leaves no half-staged probe behind.
  const stopped = new AbortController();
  stopped.abort();
  const interrupted = await installProbe(app.collections, model, log, stopped.signal);
  t.equal(interrupted.outcome, 'installed');
  await interrupted.staged;
  t.equal(await store.manifest('probe'), undefined, 'removed, for the next start to install');
  const replaced = await installProbe(app.collections, model, log);
  t.equal(replaced.outcome, 'installed');
  await replaced.staged;
  const view = await built(app);
  t.not(view.build.jobId, before.build.jobId, 'built again');
  t.match(view, { images: 2, complete: true });
  t.same(view.categories.map((c) => c.name).sort(), ['blue', 'red'], 'each render’s folder is its category');
  t.equal(
    (
      await installProbe(
        app.collections,
        { ...model, directory: { ...model.directory, manifest: { files: {} } } },
        log,
      )
    ).outcome,
    'absent',
    'a model directory without a probe has none',
  );
});
