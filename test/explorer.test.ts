/**
 * The explorer page in a real browser (Debian's chromium, driven by playwright-core) against the
 * service on the embedded toy model, listening on a real port: every view loads and draws from the
 * API, a prompt shows bars (`data-neuron`), a search shows progress then a result, API errors reach
 * the error banner with the API's own message, the page stays within 1280 px and 390 px wide, it
 * makes no request off the service's origin and breaks no CSP rule. Screenshots go to
 * test/artifacts/. Also checks that the committed web/dist/ is what web/ builds to.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { chromium, type BrowserContext } from 'playwright-core';
import { buildApp, type App } from '../src/app.js';
import { DEFAULT_MODEL_DIR, loadConfig, REPO_ROOT } from '../src/config.js';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const WEB_DIST = path.join(REPO_ROOT, 'web', 'dist');
const ARTIFACTS = path.join(REPO_ROOT, 'test', 'artifacts');
const VITE = path.join(REPO_ROOT, 'node_modules', 'vite', 'bin', 'vite.js');
const WIDTHS = [1280, 390] as const;

const toyModel = existsSync(path.join(DEFAULT_MODEL_DIR, 'clip.json'));
const browserThere = existsSync(CHROMIUM);
const tmp = await mkdtemp(path.join(os.tmpdir(), 'explorer-'));
t.teardown(() => rm(tmp, { recursive: true, force: true }));

async function viteBuild(outDir: string): Promise<void> {
  await promisify(execFile)(
    process.execPath,
    [
      VITE,
      'build',
      '--config',
      'web/vite.config.ts',
      '--outDir',
      outDir,
      '--emptyOutDir',
      '--logLevel',
      'error',
    ],
    { cwd: REPO_ROOT },
  );
}

async function files(dir: string): Promise<Map<string, Buffer>> {
  const found = new Map<string, Buffer>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const full = path.join(entry.parentPath, entry.name);
    found.set(path.relative(dir, full), await readFile(full));
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

t.test(
  'the explorer served by the service',
  { skip: !toyModel && 'the embedded toy model is not there' },
  async (t) => {
    const app: App = await buildApp({
      config: {
        ...loadConfig({}),
        dataDir: path.join(tmp, 'data'),
        executionProviders: ['cpu'],
        rateLimitPerMinute: 0,
      },
      logger: false,
    });
    t.teardown(() => app.close());
    const base = await app.listen({ port: 0, host: '127.0.0.1' });
    // The toy model's word index builds in the background at start; the word views wait for it.
    const wordsReady = waitForWords(base);
    wordsReady.catch(() => undefined);

    await t.test(
      '/ and /assets/*: types, revalidation, no escape from web/dist, hidden from OpenAPI',
      async (t) => {
        const page = await fetch(`${base}/`);
        t.equal(page.status, 200);
        t.match(page.headers.get('content-type'), /^text\/html/);
        const policy = page.headers.get('content-security-policy') ?? '';
        t.match(policy, /script-src 'self'/, 'the service CSP');
        t.notMatch(
          policy,
          /upgrade-insecure-requests/,
          'without upgrade-insecure-requests (plain-HTTP deployments)',
        );
        const script = /src="(\/assets\/[^"]+\.js)"/.exec(await page.text())?.[1];
        t.ok(script, 'the page loads a script from /assets/');
        const asset = await fetch(base + script);
        t.equal(asset.status, 200);
        t.match(asset.headers.get('content-type'), /^text\/javascript/);
        const again = await fetch(base + script, {
          headers: { 'if-none-match': asset.headers.get('etag') ?? '' },
        });
        t.equal(again.status, 304, 'an unchanged file is not sent again');
        for (const url of [
          '/assets/..%2Fpackage.json',
          '/assets/%2E%2E/index.html',
          '/assets/nope.js',
          '/assets/',
        ]) {
          t.equal((await fetch(base + url)).status, 404, `${url} is 404`);
        }
        const spec = (await (await fetch(`${base}/openapi.json`)).json()) as {
          paths: Record<string, unknown>;
        };
        t.same(
          Object.keys(spec.paths).filter((route) => route === '/' || route.startsWith('/assets')),
          [],
          'the explorer is not in the OpenAPI document',
        );
      },
    );

    await t.test('in chromium', { skip: skipReason() }, async (t) => {
      await mkdir(ARTIFACTS, { recursive: true });
      const profile = path.join(tmp, 'profile');
      const context: BrowserContext = await chromium.launchPersistentContext(profile, {
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
      const offOrigin: string[] = [];
      const pageErrors: string[] = [];
      const cspViolations: string[] = [];
      page.on('request', (request) => {
        const url = request.url();
        if (!url.startsWith(base) && !url.startsWith('data:') && !url.startsWith('blob:'))
          offOrigin.push(url);
      });
      page.on('pageerror', (error) => pageErrors.push(error.message));
      page.on('console', (message) => {
        if (/Content Security Policy/i.test(message.text())) cspViolations.push(message.text());
      });

      /** The API's own message for a failing call, read without the page. */
      async function apiMessage(url: string, init?: RequestInit): Promise<string> {
        const response = await fetch(base + url, init);
        t.ok(response.status >= 400, `${url} fails (${response.status})`);
        return ((await response.json()) as { message: string }).message;
      }

      async function bannerSays(message: string): Promise<void> {
        await page.locator('#error').waitFor({ state: 'visible' });
        t.match(await page.locator('#error-message').textContent(), message, `the banner shows “${message}”`);
      }

      async function open(view: string): Promise<void> {
        await page.goto(`${base}/#/${view}`);
        await page.locator(`main#view[data-view="${view.split('/')[0]}"]`).waitFor();
      }

      const shot = (name: string) =>
        page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });

      let topNeuron = 0;

      await t.test(
        'prompt: bars for two prompts side by side; an empty prompt shows the API error',
        async (t) => {
          const response = await page.goto(`${base}/`);
          t.equal(response?.status(), 200);
          t.match(response?.headers()['content-security-policy'] ?? '', /script-src 'self'/);
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
          await shot('prompt-1280');

          const message = await apiMessage('/v1/attribution/text', {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ texts: [''], topK: 8 }),
          });
          await page.fill('input[name=first]', '');
          await page.fill('input[name=second]', '');
          await page.press('input[name=first]', 'Enter');
          await bannerSays(message);
          await shot('prompt-error-1280');
        },
      );

      await t.test('neuron: an out-of-range neuron shows the API error', async (t) => {
        const message = await apiMessage('/v1/neurons/99999');
        await open('neuron/99999');
        await bannerSays(message);
        t.match(message, /out of range/);
        await shot('neuron-error-1280');
      });

      await t.test('neuron: label, words with their images, intervention check, live search', async (t) => {
        await wordsReady;
        await open(`neuron/${topNeuron}`);
        const label = await page.locator('#neuron-about .neuron-label').textContent();
        t.ok(label, `neuron ${topNeuron} is “${label}”`);
        await page.locator('#verify-result .verdict').waitFor();
        t.match(await page.locator('#verify-result').textContent(), /logit before/);
        const images = page.locator('#top-words img');
        await images.first().waitFor();
        t.equal(await images.count(), 6, 'six top words');
        await page.waitForFunction(
          '[...document.querySelectorAll("#neuron-words img")].every((i) => i.naturalWidth > 0)',
        );
        t.equal(await page.locator('#bottom-words img').count(), 6, 'six bottom words');

        await page.fill('input[name=steps]', '120');
        await page.click('#search button[type=submit]');
        await page.locator('#search-status progress').waitFor();
        t.pass('the search reports progress');
        await page.locator('#search-best').waitFor();
        t.ok(await page.locator('#search-best').textContent(), 'with the best text so far');
        await shot('neuron-search-running-1280');
        await page.locator('#search-result').waitFor({ timeout: 60_000 });
        t.equal(await page.locator('#search-status').getAttribute('data-state'), 'completed');
        t.ok((await page.locator('#search-result .score-row').count()) > 0, 'the best texts are listed');
        await shot('neuron-1280');
      });

      await t.test('words: neighbours and arithmetic with the lexical mask on and off', async (t) => {
        await wordsReady;
        await open('words');
        await page.locator('#neighbors .score-row').first().waitFor();
        t.equal(await page.locator('#neighbors section').count(), 2, 'masked and unmasked');
        await page.click('text=Compute');
        await page.locator('#arithmetic .score-row').first().waitFor();
        t.equal(await page.locator('#arithmetic section').count(), 2, 'masked and unmasked');
        await shot('words-1280');
      });

      await t.test('emotions: the atlas; a click shows a composition', async (t) => {
        await open('emotions');
        const points = page.locator('svg.scatter .point');
        await points.first().waitFor({ timeout: 60_000 });
        t.ok((await points.count()) > 20, `${await points.count()} emotions drawn`);
        t.ok((await page.locator('.legend li').count()) >= 2, 'a legend of core emotions');
        const name = await points.nth(3).getAttribute('data-emotion');
        await points.nth(3).click();
        await page.locator('#emotion [data-neuron]').first().waitFor();
        t.equal(await page.locator('#emotion h3').textContent(), name, `the composition of ${name}`);
        await shot('emotions-1280');
      });

      await t.test(
        'image: contributions, exact logit and zero-shot labels; no image shows the API error',
        async (t) => {
          await open('image');
          const message = await apiMessage('/v1/classify', {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ image: '', labels: ['red'] }),
          });
          const attributionMessage = await apiMessage('/v1/attribution/image', {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ image: '', text: 'a red circle', topK: 8 }),
          });
          await page.click('text=Analyse');
          await page.locator('#error').waitFor({ state: 'visible' });
          const shown = (await page.locator('#error-message').textContent()) ?? '';
          t.ok(
            shown.includes(message) || shown.includes(attributionMessage),
            `the banner shows the API's message`,
          );

          const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#e02020' } })
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
          await shot('image-1280');
        },
      );

      await t.test('every view fits 1280 px and 390 px without horizontal overflow', async (t) => {
        await wordsReady;
        const ready: Record<string, string> = {
          prompt: '#prompt-results [data-neuron]',
          [`neuron/${topNeuron}`]: '#top-words img',
          words: '#neighbors .score-row',
          emotions: 'svg.scatter .point',
          image: 'input[name=image]',
        };
        for (const width of WIDTHS) {
          await page.setViewportSize({ width, height: width > 500 ? 900 : 844 });
          for (const [view, selector] of Object.entries(ready)) {
            await open(view);
            if (view === 'prompt') await page.press('input[name=first]', 'Enter');
            await page.locator(selector).first().waitFor({ timeout: 60_000 });
            const [scroll, inner] = (await page.evaluate(
              '[document.documentElement.scrollWidth, window.innerWidth]',
            )) as [number, number];
            t.ok(scroll <= inner, `${view} at ${width} px: content ${scroll} px wide`);
            if (width < 1280) await shot(`${view.split('/')[0]}-${width}`);
          }
        }
      });

      t.same(pageErrors, [], 'no uncaught errors in the page');
      t.same(cspViolations, [], 'no Content-Security-Policy violations');
      t.same(offOrigin, [], 'no request leaves the service');
    });
  },
);

function skipReason(): string | false {
  if (!browserThere) return `no chromium at ${CHROMIUM} (scripts/setup-test-env.sh installs it)`;
  return false;
}

/** Resolves once the word routes answer (the index of the toy model's words is built). */
async function waitForWords(base: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const response = await fetch(`${base}/v1/words/neighbors?word=red&k=1`);
    if (response.ok) return;
    if (response.status !== 409 || Date.now() > deadline) {
      throw new Error(`the word index did not come up: ${response.status} ${await response.text()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
