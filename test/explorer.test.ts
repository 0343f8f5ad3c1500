/**
 * The explorer page, served by the service on the embedded toy model (a real listening port) and
 * used in a real browser (Debian's chromium, driven by playwright-core): every view loads and draws
 * from the API, a prompt shows bars (`data-neuron`), a search shows progress then a result, API
 * errors reach the banner with the API's own message, an API key can be given, the page fits
 * 1280 px and 390 px, it makes no request off the service and breaks no CSP rule. Screenshots go to
 * test/artifacts/. Also: the committed web/dist/ is what web/ builds to, and the serving routes.
 */
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { chromium, type Page } from 'playwright-core';
import Fastify from 'fastify';
import { buildApp, type App } from '../src/app.js';
import explorer from '../src/plugins/explorer.js';
import { DEFAULT_MODEL_DIR, loadConfig, REPO_ROOT } from '../src/config.js';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const WEB_DIST = path.join(REPO_ROOT, 'web', 'dist');
const ARTIFACTS = path.join(REPO_ROOT, 'test', 'artifacts');
const VITE = path.join(REPO_ROOT, 'node_modules', 'vite', 'bin', 'vite.js');
const KEY = 'explorer-test-key';

const tmp = await mkdtemp(path.join(os.tmpdir(), 'explorer-'));
t.teardown(() => rm(tmp, { recursive: true, force: true }));

/** A GET whose body is read in full (an unread body holds its socket open past the service's close). */
async function get(url: string, headers: Record<string, string> = {}) {
  const response = await fetch(url, { headers });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

async function viteBuild(outDir: string): Promise<void> {
  const args = ['build', '--config', 'web/vite.config.ts', '--outDir', outDir, '--emptyOutDir'];
  await promisify(execFile)(process.execPath, [VITE, ...args, '--logLevel', 'error'], { cwd: REPO_ROOT });
}

async function files(dir: string): Promise<Map<string, Buffer>> {
  const found = new Map<string, Buffer>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) {
      const full = path.join(entry.parentPath, entry.name);
      found.set(path.relative(dir, full), await readFile(full));
    }
  }
  return found;
}

t.test('web/dist is what web/ builds to', async (t) => {
  if (!existsSync(path.join(WEB_DIST, 'index.html'))) await viteBuild(WEB_DIST);
  const fresh = path.join(tmp, 'dist');
  await viteBuild(fresh);
  const [built, committed] = await Promise.all([files(fresh), files(WEB_DIST)]);
  t.same([...committed.keys()].sort(), [...built.keys()].sort(), 'the same files');
  const stale = [...built]
    .filter(([name, bytes]) => !committed.get(name)?.equals(bytes))
    .map(([name]) => name);
  t.same(stale, [], 'the same bytes (run `npm run web:build` and commit web/dist/)');
  const total = [...committed.values()].reduce((sum, bytes) => sum + bytes.length, 0);
  t.ok(total < 200 * 1024, `the built page is small (${total} bytes)`);
});

t.test('without web/dist, / says how to build the page', async (t) => {
  const app = Fastify({ logger: false });
  t.teardown(() => app.close());
  await app.register(explorer, { dir: path.join(tmp, 'not-built') });
  const response = await app.inject({ method: 'GET', url: '/' });
  t.equal(response.statusCode, 404);
  t.match(response.json().message, /npm run web:build/);
  t.equal((await app.inject({ method: 'GET', url: '/assets/explorer.js' })).statusCode, 404);
});

if (!existsSync(path.join(DEFAULT_MODEL_DIR, 'clip.json'))) {
  t.test(
    'the explorer on the service',
    { skip: 'the embedded toy model is not there' },
    async () => undefined,
  );
} else {
  const config = {
    ...loadConfig({}),
    dataDir: path.join(tmp, 'data'),
    collectionProbe: false, // 2,290 renders built in the background: CPU this test does not use
    executionProviders: ['cpu' as const],
    rateLimitPerMinute: 0,
    // No back-pressure 503s: on a loaded machine the word index build and the emotion fit can hold
    // the event loop past the 2 s default, and the page would show "under pressure" instead.
    maxEventLoopDelayMs: 0,
  };
  const app: App = await buildApp({ config, logger: false });
  t.teardown(() => app.close());
  const base = await app.listen({ port: 0, host: '127.0.0.1' });
  // The toy model's word index builds in the background at start; the word views wait for it.
  const wordsReady = waitForWords(base);
  wordsReady.catch(() => undefined);
  // So does the emotion fit behind the atlas (CPU-bound, seconds on a busy machine).
  const emotionsReady = fetch(`${base}/v1/emotions/atlas`).then((response) => response.arrayBuffer());
  emotionsReady.catch(() => undefined);

  t.test('/ and /assets/*: types, revalidation, no escape from web/dist, hidden from OpenAPI', async (t) => {
    const page = await get(`${base}/`);
    t.equal(page.status, 200);
    t.match(page.headers.get('content-type'), /^text\/html/);
    const policy = page.headers.get('content-security-policy') ?? '';
    t.match(policy, /script-src 'self'/, 'the service CSP');
    t.notMatch(policy, /upgrade-insecure-requests/, 'without upgrade-insecure-requests (plain-HTTP hosts)');
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(page.text)?.[1];
    t.ok(script, 'the page loads a script from /assets/');
    const asset = await get(`${base}${script}`);
    t.equal(asset.status, 200);
    t.match(asset.headers.get('content-type'), /^text\/javascript/);
    const again = await get(`${base}${script}`, { 'if-none-match': asset.headers.get('etag') ?? '' });
    t.equal(again.status, 304, 'an unchanged file is not sent again');
    for (const url of [
      '/assets/..%2Fpackage.json',
      '/assets/%2E%2E/index.html',
      '/assets/nope.js',
      '/assets/',
    ]) {
      t.equal((await get(base + url)).status, 404, `${url} is 404`);
    }
    const spec = JSON.parse((await get(`${base}/openapi.json`)).text) as { paths: Record<string, unknown> };
    const explorerPaths = Object.keys(spec.paths).filter(
      (route) => route === '/' || route.startsWith('/assets'),
    );
    t.same(explorerPaths, [], 'the explorer is not in the OpenAPI document');
  });

  t.test('in chromium', { skip: !existsSync(CHROMIUM) && `no chromium at ${CHROMIUM}` }, async (t) => {
    await mkdir(ARTIFACTS, { recursive: true });
    const context = await chromium.launchPersistentContext(path.join(tmp, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 900 },
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    t.teardown(() => context.close());
    context.setDefaultTimeout(20_000);
    const page = context.pages()[0] ?? (await context.newPage());
    const origins = [`${base}/`, 'data:', 'blob:'];
    const offOrigin: string[] = [];
    const pageErrors: string[] = [];
    const cspViolations: string[] = [];
    page.on('request', (request) => {
      if (!origins.some((origin) => request.url().startsWith(origin))) offOrigin.push(request.url());
    });
    page.on('pageerror', (error) => pageErrors.push(error.message));
    page.on('console', (message) => {
      if (/Content Security Policy/i.test(message.text())) cspViolations.push(message.text());
    });
    const ui = new Ui(t, page, base);
    let topNeuron = 0;

    await t.test(
      'prompt: bars for two prompts side by side; an empty prompt shows the API error',
      async (t) => {
        await page.goto(`${base}/`);
        await page.locator('#model').filter({ hasText: 'neurons' }).waitFor();
        await page.fill('input[name=first]', 'a yellow star');
        await page.fill('input[name=second]', 'a blue circle');
        await page.press('input[name=first]', 'Enter');
        await page.locator('#prompt-results [data-neuron]').first().waitFor();
        t.equal(await page.locator('#prompt-results section').count(), 2, 'one column per prompt');
        const bars = page.locator('#prompt-results [data-neuron]');
        t.equal(await bars.count(), 2 * 2 * 8, 'top and bottom neurons of both prompts');
        topNeuron = Number(await bars.first().getAttribute('data-neuron'));
        t.ok(Number.isInteger(topNeuron), `the first bar is neuron ${topNeuron}`);
        await ui.shot('prompt-1280');

        const message = await ui.apiMessage('/v1/attribution/text', { texts: [''], topK: 8 });
        await page.fill('input[name=first]', '');
        await page.fill('input[name=second]', '');
        await page.press('input[name=first]', 'Enter');
        await ui.bannerSays(message);
        await ui.shot('prompt-error-1280');
      },
    );

    await t.test('neuron: an out-of-range neuron shows the API error', async (t) => {
      const message = await ui.apiMessage('/v1/neurons/99999');
      t.match(message, /out of range/);
      await ui.open('neuron/99999');
      await ui.bannerSays(message);
      await ui.shot('neuron-error-1280');
    });

    await t.test('neuron: label, words with their images, intervention check, live search', async (t) => {
      await wordsReady;
      await ui.open(`neuron/${topNeuron}`);
      const label = await page.locator('#neuron-about .neuron-label').textContent();
      t.ok(label, `neuron ${topNeuron} is “${label}”`);
      await page.locator('#verify-result .verdict').waitFor();
      t.match(await page.locator('#verify-result').textContent(), /logit before/, 'the intervention check');
      await page.locator('#top-words img').first().waitFor();
      t.equal(await page.locator('#top-words img').count(), 6, 'six top words');
      t.equal(await page.locator('#bottom-words img').count(), 6, 'six bottom words');
      await until(
        page,
        '[...document.querySelectorAll("#neuron-words img")].every((i) => i.naturalWidth > 0)',
      );
      t.pass('their rastered images are shown');

      await page.fill('input[name=steps]', '120');
      await page.click('#search button[type=submit]');
      await page.locator('#search-status progress').waitFor();
      await page.locator('#search-best').waitFor();
      t.ok(
        await page.locator('#search-best').textContent(),
        'the search shows progress and its best text so far',
      );
      await ui.shot('neuron-search-running-1280');
      await page.locator('#search-result').waitFor({ timeout: 60_000 });
      t.equal(
        await page.locator('#search-status').getAttribute('data-state'),
        'completed',
        'then its result',
      );
      t.ok((await page.locator('#search-result .score-row').count()) > 0, 'the best texts are listed');
      await ui.shot('neuron-1280');
      const best = (await page.locator('#search-result q').textContent()) ?? '';
      await page.click('#search-result a[href^="#/prompt/"]');
      await page.locator('#prompt-results [data-neuron]').first().waitFor();
      t.equal(
        await page.locator('#prompt-results h3').textContent(),
        `“${best}”`,
        'the best text opens as a prompt',
      );
    });

    await t.test('words: neighbours and arithmetic with the lexical mask on and off', async (t) => {
      await wordsReady;
      await ui.open('words');
      await page.locator('#neighbors .score-row').first().waitFor();
      t.equal(await page.locator('#neighbors section').count(), 2, 'masked and unmasked neighbours');
      t.match(
        await page.locator('#neighbors h4').first().textContent(),
        /masked \(\d+ of \d+: \d+ from the catalogue, \d+ detected at threshold/,
        'how many are masked',
      );
      await page.click('text=Compute');
      await page.locator('#arithmetic .score-row').first().waitFor();
      t.equal(await page.locator('#arithmetic section').count(), 2, 'masked and unmasked arithmetic');
      await ui.shot('words-1280');
    });

    await t.test('emotions: the atlas; a click shows a composition', async (t) => {
      await emotionsReady;
      await ui.open('emotions');
      const points = page.locator('svg.scatter .point');
      await points.first().waitFor({ timeout: 60_000 });
      t.ok((await points.count()) > 20, `${await points.count()} emotions drawn`);
      t.ok((await page.locator('.legend li').count()) >= 2, 'a legend of core emotions');
      const name = await points.nth(3).getAttribute('data-emotion');
      await points.nth(3).click();
      await page.locator('#emotion [data-neuron]').first().waitFor({ timeout: 60_000 });
      t.equal(await page.locator('#emotion h3').textContent(), name, `the composition of ${name}`);
      await ui.shot('emotions-1280');
    });

    await t.test(
      'image: contributions, logit and zero-shot labels; no image shows the API error',
      async (t) => {
        await ui.open('image');
        const messages = [
          await ui.apiMessage('/v1/classify', { image: '', labels: ['red'] }),
          await ui.apiMessage('/v1/attribution/image', { image: '', text: 'a red circle', topK: 8 }),
        ];
        await page.click('text=Analyse');
        await page.locator('#error').waitFor({ state: 'visible' });
        const shown = (await page.locator('#error-message').textContent()) ?? '';
        t.ok(
          messages.some((message) => shown.includes(message)),
          `the banner shows the API's message: ${shown}`,
        );

        const background = '#e02020';
        const png = await sharp({ create: { width: 64, height: 64, channels: 3, background } })
          .png()
          .toBuffer();
        await page.setInputFiles('input[name=image]', {
          name: 'red.png',
          mimeType: 'image/png',
          buffer: png,
        });
        await page.click('text=Analyse');
        await page.locator('#contributions [data-neuron]').first().waitFor();
        t.match(await page.locator('#logit').textContent(), /^-?\d/, 'the exact logit');
        t.equal(await page.locator('#classes .score-row').count(), 5, 'one probability per label');
        t.ok(await page.locator('#error').isHidden(), 'the banner is cleared');
        await ui.shot('image-1280');
      },
    );

    await t.test('attack: a collection’s image and an upload, as the API answers them', async (t) => {
      await wordsReady; // the lexical set: the explanation and the defence
      const solid = (r: number, g: number, b: number, width: number) =>
        sharp({ create: { width, height: 64, channels: 3, background: { r, g, b } } })
          .png()
          .toBuffer();
      const [red, blue] = [await solid(215, 25, 30, 80), await solid(25, 75, 215, 72)];
      await fetch(`${base}/v1/collections`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'attack pictures' }),
      });
      const form = new FormData();
      form.append('category', 'red');
      form.append('image', new Blob([red], { type: 'image/png' }), 'red.png');
      form.append('category', 'blue');
      form.append('image', new Blob([blue], { type: 'image/png' }), 'blue.png');
      // More for a sample that is a job (over 32 images): red and blue ones, and 3 green ones that a
      // sample of the categories red and blue leaves out. Each of its own width (one bytes, one image).
      const more: [string, number, number, number][] = [
        ...Array.from({ length: 34 }, (_, i): [string, number, number, number] =>
          i % 2 ? ['blue', 25, 75, 215] : ['red', 215, 25, 30],
        ),
        ...Array.from({ length: 3 }, (): [string, number, number, number] => ['green', 35, 160, 45]),
      ];
      for (const [i, [category, r, g, b]] of more.entries()) {
        form.append('category', category);
        form.append('image', new Blob([await solid(r, g, b, 90 + i)], { type: 'image/png' }), `${i}.png`);
      }
      const upload = await fetch(`${base}/v1/collections/attack-pictures/images`, {
        method: 'POST',
        body: form,
      });
      t.equal(upload.status, 202, 'the pictures uploaded');
      await app.collections.settled('attack-pictures');
      // The view's defaults, sent to the API here: the reference for what the page shows.
      const settings = {
        text: 'green',
        labels: ['red', 'orange', 'yellow', 'green', 'blue', 'purple', 'pink'],
        templates: ['{}', 'the colour {}', 'a {} patch'],
        size: 0.25,
        box: 'white',
        ablate: 'lexical',
        explain: 8,
        returnImages: true,
      };
      const reference = async (source: object) => {
        const response = await fetch(`${base}/v1/typographic/attack`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ ...settings, ...source }),
        });
        const answer = (await response.json()) as { images: unknown[] };
        return answer.images[0] as {
          before: { predicted: string };
          after: { predicted: string };
          success: boolean;
          explanation: { neurons: { neuron: number }[] };
          defended: { after: { predicted: string }; success: boolean };
          attackedPng: string;
        };
      };
      const shown = async (t: Test, expected: Awaited<ReturnType<typeof reference>>, what: string) => {
        const side = (card: string, name: string) =>
          page.locator(`${card} [data-side=${name}]`).getAttribute('data-predicted');
        t.equal(await side('#attack-probabilities', 'before'), expected.before.predicted, `${what}: before`);
        t.equal(await side('#attack-probabilities', 'after'), expected.after.predicted, `${what}: after`);
        t.equal(
          await page.locator('#attacked .verdict').getAttribute('data-success'),
          String(expected.success),
          `${what}: the verdict`,
        );
        const neurons = await page
          .locator('#attack-neurons [data-neuron]')
          .evaluateAll((links) => links.map((link) => Number(link.getAttribute('data-neuron'))));
        t.same(
          neurons,
          expected.explanation.neurons.map((n) => n.neuron),
          `${what}: the neurons of the explanation`,
        );
        t.equal(
          await side('#attack-defence', 'after'),
          expected.defended.after.predicted,
          `${what}: after, defended`,
        );
        await until(page, 'document.querySelector("#attacked img.attacked").naturalWidth === 64');
      };

      await ui.open('attack/attack-pictures/1');
      await page
        .locator('select[name=source] option[value="attack-pictures"]')
        .waitFor({ state: 'attached' });
      t.equal(
        await page.locator('select[name=source]').inputValue(),
        'attack-pictures',
        'the address picks it',
      );
      await page.click('#attack-form button[type=submit]');
      await page.locator('#attacked[data-from="attack-pictures/1"]').waitFor();
      await shown(
        t,
        await reference({ collection: 'attack-pictures', imageIds: [1] }),
        'image 1 of the collection',
      );
      await ui.shot('attack-1280');

      await page.selectOption('select[name=source]', '');
      await page.setInputFiles('input[name=image]', { name: 'red.png', mimeType: 'image/png', buffer: red });
      await page.click('#attack-form button[type=submit]');
      await page.locator('#attacked[data-from=upload]').waitFor();
      await shown(t, await reference({ image: red.toString('base64') }), 'the upload');

      // The fonts and colours offered are the API's; the text's font, size, centre, ink and box,
      // and a defence by listed neurons reach the API: the page shows what it answers them.
      const options = (await (await fetch(`${base}/v1/typographic/options`)).json()) as {
        fonts: string[];
        colours: { name: string }[];
      };
      t.same(
        await page
          .locator('select[name=font] option')
          .evaluateAll((os) => os.map((o) => o.getAttribute('value'))),
        options.fonts,
        'the fonts are the API’s',
      );
      t.same(
        await page
          .locator('#attack-colours option')
          .evaluateAll((os) => os.map((o) => o.getAttribute('value'))),
        options.colours.map((c) => c.name),
        'the colours are the API’s',
      );
      const custom = { font: 'serif-bold', size: 0.2, x: 0.45, y: 0.55, colour: 'blue', box: '#ff0' };
      await page.selectOption('select[name=font]', custom.font);
      await page.fill('input[name=size]', String(custom.size));
      await page.fill('input[name=x]', String(custom.x));
      await page.fill('input[name=y]', String(custom.y));
      await page.fill('input[name=colour]', custom.colour);
      await page.fill('input[name=boxColour]', custom.box);
      await page.selectOption('select[name=defence]', 'neurons');
      await page.fill('input[name=neurons]', '3, 1 2');
      await page.click('#attack-form button[type=submit]');
      await page.locator('#attack-defence[data-ablated="3"]').waitFor();
      const customised = await reference({ image: red.toString('base64'), ...custom, ablate: [1, 2, 3] });
      await shown(t, customised, 'the upload, in the chosen font, size, place, ink, box and defence');
      t.equal(
        await page.locator('#attacked img.attacked').getAttribute('src'),
        `data:image/png;base64,${customised.attackedPng}`,
        'the attacked input is the API’s for those settings',
      );
      t.match(
        await page.locator('#attack-defence h3').textContent(),
        /3 listed neurons ablated/,
        'the defence names what it ablated',
      );

      // A seeded sample of two categories: 33 images, so a job, followed to its summary.
      const sample = { count: 33, seed: 7, categories: ['red', 'blue'] };
      await page.selectOption('select[name=source]', 'attack-pictures');
      await page.selectOption('select[name=pick]', 'sample');
      await page.fill('input[name=count]', String(sample.count));
      await page.fill('input[name=seed]', String(sample.seed));
      await page.selectOption('select[name=categories]', sample.categories);
      await page.click('#attack-form button[type=submit]');
      const pageJob = await page.locator('#attack-job[data-job]').getAttribute('data-job');
      // The API's answer to the same request, sent at once: an identical request joins the page's
      // job while it is queued or running (no second run), else it is a job of its own.
      const queued = await fetch(`${base}/v1/typographic/attack`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          ...settings,
          ...custom,
          ablate: [3, 1, 2],
          explain: 0,
          returnImages: undefined,
          collection: 'attack-pictures',
          sample,
        }),
      });
      t.equal(queued.status, 202, 'the same sample is a job');
      const { jobId, deduplicated } = (await queued.json()) as { jobId: string; deduplicated: boolean };
      t.comment(
        deduplicated
          ? `the page's job ${pageJob}, joined`
          : `a job of its own (the page's ${pageJob} had ended)`,
      );
      await page.locator('#attack-job[data-state=completed]').waitFor({ timeout: 60_000 });
      await page.locator('#attack-summary').waitFor();
      t.same(
        await page
          .locator('#attack-job progress')
          .evaluate((p) => [p.getAttribute('value'), p.getAttribute('max')]),
        ['33', '33'],
        'the job’s progress, to its end',
      );
      type Measure = { successes: number; n: number };
      let job: {
        state: string;
        result?: {
          images: {
            imageId: number;
            category: string;
            before: { predicted: string };
            after: { predicted: string };
          }[];
          summary: Record<string, Measure>;
          defence: Record<string, Measure>;
        };
      };
      do {
        await new Promise((resolve) => setTimeout(resolve, 100));
        job = (await (await fetch(`${base}/v1/jobs/${jobId}`)).json()) as typeof job;
      } while (!['completed', 'failed', 'cancelled'].includes(job.state));
      t.equal(job.state, 'completed');
      const expected = job.result!;
      t.ok(
        expected.images.every((row) => row.category === 'red' || row.category === 'blue'),
        'the sample is of the categories asked',
      );
      for (const name of ['attack', 'cleanAccuracy', 'attackedAccuracy']) {
        for (const [side, measures] of [
          ['plain', expected.summary],
          ['defended', expected.defence],
        ] as const) {
          const cell = page.locator(`#attack-summary td[data-measure=${name}][data-side=${side}]`);
          t.same(
            [Number(await cell.getAttribute('data-successes')), Number(await cell.getAttribute('data-n'))],
            [measures[name].successes, measures[name].n],
            `${name}, ${side}: the API’s counts`,
          );
        }
      }
      const rows = await page
        .locator('#attack-rows tbody tr')
        .evaluateAll((trs) =>
          trs.map((tr) => [
            Number(tr.getAttribute('data-image-id')),
            tr.getAttribute('data-before'),
            tr.getAttribute('data-after'),
          ]),
        );
      t.same(
        rows,
        expected.images.map((row) => [row.imageId, row.before.predicted, row.after.predicted]),
        'a row per image: the API’s images and predictions',
      );
      await until(
        page,
        '[...document.querySelectorAll("#attack-rows img.thumb")].filter((i) => i.naturalWidth > 0).length === 33',
      );
      t.pass('each row with its thumbnail');
      t.match(page.url(), /#\/attack\/attack-pictures\/sample$/, 'the address names the sample');
      await ui.shot('attack-sample-1280');
      await page.selectOption('select[name=source]', '');

      const message = await ui.apiMessage('/v1/typographic/attack', {
        ...settings,
        image: red.toString('base64'),
        labels: ['red', 'blue'],
      });
      await page.fill('input[name=labels]', 'red, blue');
      await page.click('#attack-form button[type=submit]');
      await ui.bannerSays(message);
    });

    await t.test('every view fits 1280 px and 390 px without horizontal overflow', async (t) => {
      await wordsReady;
      const ready: Record<string, string> = {
        prompt: '#prompt-results [data-neuron]',
        [`neuron/${topNeuron}`]: '#top-words img',
        words: '#neighbors .score-row',
        emotions: 'svg.scatter .point',
        image: 'input[name=image]',
        attack: 'input[name=text]',
      };
      for (const width of [1280, 390]) {
        await page.setViewportSize({ width, height: width > 500 ? 900 : 844 });
        for (const [view, selector] of Object.entries(ready)) {
          await ui.open(view);
          if (view === 'prompt') await page.press('input[name=first]', 'Enter');
          await page.locator(selector).first().waitFor({ timeout: 60_000 });
          const [scroll, inner] = (await page.evaluate(
            '[document.documentElement.scrollWidth, innerWidth]',
          )) as [number, number];
          t.ok(scroll <= inner, `${view} at ${width} px: content ${scroll} px wide`);
          if (width < 1280) await ui.shot(`${view.split('/')[0]}-${width}`);
        }
      }
      await page.setViewportSize({ width: 1280, height: 900 });
    });

    await t.test('a service with API keys: its 401 message, then a key; searches are polled', async (t) => {
      await wordsReady; // the keyed service loads the index the first one built
      const keyed = await buildApp({ config: { ...config, apiKeys: [KEY] }, logger: false });
      t.teardown(() => keyed.close());
      const keyedBase = await keyed.listen({ port: 0, host: '127.0.0.1' });
      origins.push(`${keyedBase}/`);
      const keyedUi = new Ui(t, page, keyedBase);
      const message = await keyedUi.apiMessage('/v1/model');
      await page.goto(`${keyedBase}/#/prompt`);
      await keyedUi.bannerSays(message);
      await page.click('#key summary');
      await page.fill('input[name=apikey]', KEY);
      await page.click('#key-form button');
      await page.locator('#model').filter({ hasText: 'neurons' }).waitFor();
      await page.press('input[name=first]', 'Enter');
      await page.locator('#prompt-results [data-neuron]').first().waitFor();
      t.ok(await page.locator('#error').isHidden(), 'with the key, calls succeed');
      await keyedUi.open(`neuron/${topNeuron}`);
      await page.fill('input[name=steps]', '40');
      await page.click('#search button[type=submit]');
      await page.locator('#search-result').waitFor({ timeout: 60_000 });
      t.equal(await page.locator('#search-status').getAttribute('data-state'), 'completed', 'a search ends');
      await keyedUi.shot('neuron-key-1280');
    });

    t.same(pageErrors, [], 'no uncaught errors in the page');
    t.same(cspViolations, [], 'no Content-Security-Policy violations');
    t.same(offOrigin, [], 'no request leaves the service');
  });
}

/** What the tests do with the page, for one service. */
class Ui {
  constructor(
    private readonly t: Test,
    private readonly page: Page,
    private readonly base: string,
  ) {}

  /** The API's own message for a failing call (POST when there is a body), read without the page. */
  async apiMessage(url: string, body?: object): Promise<string> {
    const response = await fetch(this.base + url, {
      method: body ? 'POST' : 'GET',
      headers: body ? { 'content-type': 'application/json' } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    this.t.ok(response.status >= 400, `${url} fails (${response.status})`);
    return ((await response.json()) as { message: string }).message;
  }

  async bannerSays(message: string): Promise<void> {
    await this.page.locator('#error').waitFor({ state: 'visible' });
    const shown = await this.page.locator('#error-message').textContent();
    this.t.ok(shown?.includes(message), `the banner shows “${message}”`);
  }

  async open(view: string): Promise<void> {
    await this.page.goto(`${this.base}/#/${view}`);
    await this.page.locator(`main#view[data-view="${view.split('/')[0]}"]`).waitFor();
  }

  async shot(name: string): Promise<void> {
    await this.page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
  }
}

/**
 * Resolves once `expression` is true in the page. (page.waitForFunction evaluates its predicate
 * with eval inside the page, which the service's CSP forbids; page.evaluate goes through the
 * debugging protocol.)
 */
async function until(page: Page, expression: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await page.evaluate(expression))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${expression}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Resolves once the word routes answer (the index of the toy model's words is built; 409 and 503 meanwhile). */
async function waitForWords(base: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const response = await get(`${base}/v1/words/neighbors?word=red&k=1`);
    if (response.status === 200) return;
    if ((response.status !== 409 && response.status !== 503) || Date.now() > deadline) {
      throw new Error(`the word index did not come up: ${response.status} ${response.text}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
