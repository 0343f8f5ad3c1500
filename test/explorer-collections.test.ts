/**
 * The explorer's collection views in a real browser (Debian's chromium, driven by playwright-core)
 * on the embedded toy model: a collection is created and filled through the Collections view (three
 * uploads of rendered shapes, one category each), its build is followed to the end, a text search
 * shows thumbnails in the API's order, and a category lists its selective neurons. The neuron page
 * leads with that collection's pictures: top images (by mean, then by max) with the API's ids and
 * values, a heatmap on hover and on tap, the quantile bands, the histogram with the API's counts,
 * the category means and the bucket shares. The Image view shows a neuron's map over an image of
 * the collection (and the images most like it), and over an uploaded image. An upload without a
 * file shows the API's message; the views fit 1280 px and 390 px; no request leaves the service and
 * no CSP rule is broken. Screenshots go to test/artifacts/.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { chromium, type Page } from 'playwright-core';
import { buildApp, type App } from '../src/app.js';
import { DEFAULT_MODEL_DIR, loadConfig, REPO_ROOT } from '../src/config.js';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const ARTIFACTS = path.join(REPO_ROOT, 'test', 'artifacts');
const NAME = 'Explorer test';
const ID = 'explorer-test';

const COLOURS: Record<string, string> = { red: '#d92020', blue: '#2040d9', green: '#20a040' };
const SHAPES = [
  '<circle cx="32" cy="32" r="22"/>',
  '<rect x="12" y="12" width="40" height="40"/>',
  '<polygon points="32,6 40,24 60,24 44,36 50,56 32,44 14,56 20,36 4,24 24,24"/>',
  '<rect x="6" y="22" width="52" height="20"/>',
];

/** Shapes of one colour on white, rendered as 64 × 64 PNGs. */
async function shapes(colour: string): Promise<{ name: string; mimeType: string; buffer: Buffer }[]> {
  return Promise.all(
    SHAPES.map(async (shape, i) => ({
      name: `${colour}-${i}.png`,
      mimeType: 'image/png',
      buffer: await sharp(
        Buffer.from(
          `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="#fff"/><g fill="${COLOURS[colour]}">${shape}</g></svg>`,
        ),
      )
        .png()
        .toBuffer(),
    })),
  );
}

interface Ranked {
  imageId: number;
  value: number;
}
interface TopImages {
  images: number;
  top: Ranked[];
  quantiles: { from: number; to: number; images: Ranked[] }[];
}
interface Distribution {
  count: number;
  histogram: { edges: number[]; counts: number[] };
  categories: { category: string; mean: number; count: number }[];
  buckets: { count: number; shares: { category: string; share: number }[] }[];
}

const skip =
  (!existsSync(path.join(DEFAULT_MODEL_DIR, 'clip.json')) && 'the embedded toy model is not there') ||
  (!existsSync(CHROMIUM) && `no chromium at ${CHROMIUM}`);

t.test('the collection views in chromium', { skip }, async (t) => {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'explorer-collections-'));
  t.teardown(() => rm(tmp, { recursive: true, force: true }));
  const app: App = await withEnv({ WORD_INDEX_AUTOBUILD: 'false' }, () =>
    buildApp({
      config: {
        ...loadConfig({}),
        dataDir: path.join(tmp, 'data'),
        collectionProbe: false, // the page's collection is the one this test makes
        executionProviders: ['cpu' as const],
        rateLimitPerMinute: 0,
        warmDefaultFit: false,
        maxEventLoopDelayMs: 0, // no back-pressure 503s on a loaded machine
      },
      logger: false,
    }),
  );
  t.teardown(() => app.close());
  const base = await app.listen({ port: 0, host: '127.0.0.1' });
  const post = async <T>(url: string, body: object): Promise<T> => {
    const response = await fetch(base + url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (!response.ok) throw new Error(`${url}: ${response.status} ${await response.text()}`);
    return (await response.json()) as T;
  };
  const api = async <T>(url: string): Promise<T> => {
    const response = await fetch(base + url);
    if (!response.ok) throw new Error(`${url}: ${response.status} ${await response.text()}`);
    return (await response.json()) as T;
  };

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
  context.setDefaultTimeout(30_000);
  const page = context.pages()[0] ?? (await context.newPage());
  const offOrigin: string[] = [];
  const pageErrors: string[] = [];
  const cspViolations: string[] = [];
  page.on('request', (request) => {
    if (![`${base}/`, 'data:', 'blob:'].some((origin) => request.url().startsWith(origin)))
      offOrigin.push(request.url());
  });
  page.on('pageerror', (error) => pageErrors.push(error.message));
  page.on('console', (message) => {
    if (/Content Security Policy/i.test(message.text())) cspViolations.push(message.text());
  });
  const open = async (view: string) => {
    await page.goto(`${base}/#/${view}`);
    await page.locator(`main#view[data-view="${view.split('/')[0]}"]`).waitFor();
  };
  const shot = (name: string) =>
    page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
  const allLoaded = (selector: string) =>
    until(
      page,
      `[...document.querySelectorAll(${JSON.stringify(selector)})].every((i) => i.naturalWidth > 0)`,
    );

  const existing = (await api<{ collections: { id: string }[] }>('/v1/collections')).collections;
  let neuron = 0;

  await t.test('collections: create, upload three categories, follow the build, search', async (t) => {
    if (existing.length === 0) {
      await open('neuron/0');
      await page.locator('#no-collections a[href="#/collections"]').waitFor();
      t.pass('without collections, the neuron page says where to make one');
    }
    await open('collections');
    await page.locator('#collection-list h3').waitFor();
    await page.fill('input[name=name]', NAME);
    await page.click('#create-form button');
    await page.locator('#collection h3').filter({ hasText: NAME }).waitFor();
    t.equal(new URL(page.url()).hash, `#/collections/${ID}`, 'the new collection opens');

    // An upload without a file: the API's message in the banner.
    const refusal = await fetch(`${base}/v1/collections/${ID}/images`, {
      method: 'POST',
      body: new FormData(),
    });
    t.equal(refusal.status, 400, 'an empty upload is refused');
    const { message } = (await refusal.json()) as { message: string };
    await page.click('#upload-form button');
    await page.locator('#error').waitFor({ state: 'visible' });
    t.ok(
      (await page.locator('#error-message').textContent())?.includes(message),
      `the banner says “${message}”`,
    );

    // One upload per category, each waited for: the page follows every build to its end.
    for (const [i, colour] of Object.keys(COLOURS).entries()) {
      await page.setInputFiles('#upload-form input[name=images]', await shapes(colour));
      await page.fill('#upload-form input[name=category]', colour);
      await page.click('#upload-form button');
      await page
        .locator('#upload-result')
        .filter({ hasText: `4 files accepted (category “${colour}”)` })
        .waitFor();
      await page
        .locator('#collection-images')
        .filter({ hasText: new RegExp(`^${4 * (i + 1)}$`) })
        .waitFor({ timeout: 120_000 });
    }
    t.ok(await page.locator('#error').isHidden(), 'the uploads cleared the banner');
    await page.locator('#build-status[data-state=completed]').waitFor();
    const collection = await api<{ images: number; categories: { name: string; count: number }[] }>(
      `/v1/collections/${ID}`,
    );
    t.equal(collection.images, 12, 'the API indexed the twelve shapes');
    t.same(
      await page
        .locator('#categories .chip')
        .evaluateAll((chips) => chips.map((chip) => chip.getAttribute('data-category'))),
      collection.categories.map((category) => category.name),
      'one chip per category',
    );
    await page.locator(`#collection-list tr[data-collection="${ID}"] td[data-state=completed]`).waitFor();
    t.equal(
      await page.locator(`#collection-list tr[data-collection="${ID}"] td.number`).first().textContent(),
      '12',
      'the list shows the count once the build is done',
    );

    const search = await api<{ results: { imageId: number; score: number }[] }>(
      `/v1/collections/${ID}/search?text=${encodeURIComponent('a red circle')}&k=12`,
    );
    await page.fill('#collection-search input[name=text]', 'a red circle');
    await page.click('#collection-search button');
    await page.locator('#search-results .tile').first().waitFor();
    t.same(
      await tiles(page, '#search-results'),
      search.results.map((result) => ({ imageId: result.imageId, value: result.score })),
      'search results in the API’s order with its scores',
    );
    await allLoaded('#search-results img');
    t.pass('their thumbnails are drawn');

    const selective = await api<{ neurons: { neuron: number }[] }>(
      `/v1/collections/${ID}/categories/red/neurons?k=8`,
    );
    await page.click('#categories .chip[data-category=red]');
    await page.locator('#category-neurons [data-neuron]').first().waitFor();
    t.same(
      await page
        .locator('#category-neurons [data-neuron]')
        .evaluateAll((links) => links.map((link) => Number(link.getAttribute('data-neuron')))),
      selective.neurons.map((row) => row.neuron),
      'the neurons most selective for red, in the API’s order',
    );
    neuron = selective.neurons[0].neuron;
    await shot('collections-1280');
  });

  await t.test('neuron: top images with heatmaps, quantile bands, histogram, category bars', async (t) => {
    const query = `collection=${ID}&k=12&bins=5&perBin=4`;
    const [byMean, byMax, spread] = await Promise.all([
      api<TopImages>(`/v1/neurons/${neuron}/top-images?${query}&by=mean`),
      api<TopImages>(`/v1/neurons/${neuron}/top-images?${query}&by=max`),
      api<Distribution>(`/v1/neurons/${neuron}/distribution?collection=${ID}&by=mean&bins=24&buckets=6`),
    ]);
    await open(`neuron/${neuron}/${ID}`);
    await page.locator('#top-images .tile').first().waitFor();
    t.same(
      await tiles(page, '#top-images'),
      idsAndValues(byMean.top),
      'top images by mean: the API’s ids and values',
    );
    await allLoaded('#top-images img.thumb');
    t.pass('their thumbnails are drawn');
    // This service builds no word index: the Words card says so, and no banner covers the pictures.
    await page.locator('#words-missing').filter({ hasText: 'word index' }).waitFor();
    t.ok(await page.locator('#error').isHidden(), 'a missing word index is no banner');
    t.same(
      await page
        .locator('#quantile-bands .band')
        .evaluateAll((bands) =>
          bands.map((band) =>
            [...band.querySelectorAll('.tile')].map((tile) => Number(tile.getAttribute('data-image-id'))),
          ),
        ),
      byMean.quantiles.map((band) => band.images.map((image) => image.imageId)),
      'the examples of each quantile band',
    );

    // The histogram: one bar per bin with the API's count; together, every image once.
    const bars = await page
      .locator('#histogram rect')
      .evaluateAll((rects) => rects.map((rect) => Number(rect.getAttribute('data-count'))));
    t.same(bars, spread.histogram.counts, 'histogram bars carry the API’s counts');
    t.equal(
      bars.reduce((sum, count) => sum + count, 0),
      12,
      'which add up to the collection',
    );
    const heights = await page
      .locator('#histogram rect')
      .evaluateAll((rects) => rects.map((rect) => Number(rect.getAttribute('height'))));
    const most = Math.max(...bars);
    const full = heights[bars.indexOf(most)];
    t.ok(full > 0, 'the tallest bar is drawn');
    t.ok(
      heights.every((height, i) =>
        bars[i] === 0 ? height === 0 : Math.abs(height - Math.max(1.5, (full * bars[i]) / most)) < 0.02,
      ),
      `bar heights follow the counts (${heights.join(', ')})`,
    );
    t.same(
      await page
        .locator('#category-means .score-row .bar-label')
        .evaluateAll((labels) => labels.map((label) => label.firstChild?.textContent)),
      spread.categories.map((category) => category.category),
      'one bar per category, highest mean first',
    );
    t.same(
      await page
        .locator('#category-means .score-row')
        .evaluateAll((rows) => rows.map((row) => row.getAttribute('title'))),
      spread.categories.map((category) => `${category.category}: ${category.mean}`),
      'with the API’s means',
    );
    const columns = await page.locator('#category-buckets .share-columns li').evaluateAll((items) =>
      items.map((item) => ({
        count: Number(item.getAttribute('data-count')),
        shares: Object.fromEntries(
          [...item.querySelectorAll('.segment')].map((segment) => [
            segment.getAttribute('data-category'),
            Number(segment.getAttribute('data-share')),
          ]),
        ),
      })),
    );
    t.same(
      columns,
      spread.buckets.map((bucket) => ({
        count: bucket.count,
        shares: Object.fromEntries(
          bucket.shares.filter((share) => share.share > 0).map((share) => [share.category, share.share]),
        ),
      })),
      'one column per activation bucket, stacked by the API’s category shares',
    );

    // The three sides: the speaking side's texts as the API gives them (or the API's reason why not).
    const evidence = await fetch(`${base}/v1/neurons/${neuron}/evidence?k=8&collection=${ID}`);
    const body = (await evidence.json()) as {
      message?: string;
      speaking?: { texts: { text: string; attribution: number }[] };
      multimodality?: { topCategory: string } | null;
    };
    if (evidence.status === 200) {
      await page.locator('#evidence-speaking .score-row').first().waitFor({ timeout: 60_000 });
      t.same(
        await page
          .locator('#evidence-speaking .score-row')
          .evaluateAll((rows) => rows.map((row) => row.getAttribute('title'))),
        body.speaking?.texts.map((item) => `${item.text}: ${item.attribution}`),
        'the texts it speaks for, with the API’s attributions',
      );
      if (body.multimodality) {
        t.match(
          await page.locator('#evidence-verdict').textContent(),
          body.multimodality.topCategory,
          'the verdict names the top category',
        );
      }
    } else {
      t.ok(evidence.status < 500, `evidence answers ${evidence.status}`);
      await page
        .locator('#evidence-missing')
        .filter({ hasText: body.message ?? '' })
        .waitFor();
    }

    // Hover shows the neuron's map over the image; a tap keeps it.
    const first = page.locator('#top-images button.picture').first();
    await first.hover();
    await page.locator('#top-images img.heat:not([hidden])').first().waitFor();
    await allLoaded('#top-images img.heat:not([hidden])');
    t.pass('hovering shows the heatmap');
    await shot('neuron-pictures-1280');
    await page.mouse.move(0, 0);
    await page.locator('#top-images img.heat:not([hidden])').waitFor({ state: 'detached' });
    const second = page.locator('#top-images button.picture').nth(1);
    await second.focus();
    await page.keyboard.press('Enter');
    t.equal(await second.getAttribute('aria-pressed'), 'true', 'Enter pins the heatmap');
    await page.locator('#top-images img.heat:not([hidden])').first().waitFor();
    await page.mouse.move(0, 0);
    t.equal(await page.locator('#top-images img.heat:not([hidden])').count(), 1, 'and it stays');

    await page.selectOption('select[name=by]', 'max');
    await until(
      page,
      `JSON.stringify([...document.querySelectorAll('#top-images .tile')].map((t) => Number(t.dataset.imageId))) === ${JSON.stringify(JSON.stringify(byMax.top.map((image) => image.imageId)))}`,
    );
    t.same(await tiles(page, '#top-images'), idsAndValues(byMax.top), 'by max: the API’s ids and values');
  });

  await t.test(
    'neuron: its sections in order, speaking side, zeroed on its top images, neighbours',
    async (t) => {
      type Neighbours = { neighbours: { neuron: number; cosine: number }[] };
      const [byWeights, byActivations, evidence] = await Promise.all([
        api<Neighbours>(`/v1/neurons/${neuron}/neighbours?by=weights&k=8`),
        api<Neighbours>(`/v1/neurons/${neuron}/neighbours?by=activations&k=8&collection=${ID}`),
        api<{ speaking: { texts: { text: string }[] } }>(
          `/v1/neurons/${neuron}/evidence?k=8&collection=${ID}`,
        ),
      ]);
      await open(`neuron/${neuron}/${ID}`);
      t.same(
        await page
          .locator('main#view > section.card, main#view > .compare > section.card')
          .evaluateAll((cards) => cards.map((card) => card.id)),
        [
          'neuron-about',
          'neuron-images',
          'neuron-distribution',
          'neuron-words',
          'neuron-speaking',
          'search',
          'verify',
          'neuron-evidence',
          'neuron-neighbours',
        ],
        'pictures first, then reading, speaking, maximal text, intervention, agreement, neighbours',
      );
      await page.locator('#speaking-texts a').first().waitFor();
      t.same(
        await page.locator('#speaking-texts a').allTextContents(),
        evidence.speaking.texts.map((item) => item.text),
        'the speaking side: the API’s top texts, each a link',
      );
      const shown = (kind: string) =>
        page
          .locator(`#neighbours-${kind} a[data-neuron]`)
          .evaluateAll((links) =>
            links.map((link) => [Number(link.getAttribute('data-neuron')), link.getAttribute('title')]),
          );
      await page.locator('#neighbours-activations a[data-neuron]').first().waitFor();
      for (const [kind, answer] of [
        ['weights', byWeights],
        ['activations', byActivations],
      ] as const) {
        const rows = await shown(kind);
        t.same(
          rows.map(([id]) => id),
          answer.neighbours.map((row) => row.neuron),
          `by ${kind}: the API’s neighbours, in its order`,
        );
        t.ok(
          rows.every(([, title], i) => String(title).endsWith(`: ${answer.neighbours[i].cosine}`)),
          `by ${kind}: with the API’s cosines`,
        );
      }
      // The intervention check on its top images: the API's answer to the same request, row by row.
      const ranked = await api<{ top: { imageId: number; category: string | null }[] }>(
        `/v1/neurons/${neuron}/top-images?collection=${ID}&k=6&by=mean&bins=0`,
      );
      const thumbnails = await Promise.all(
        ranked.top.map(async (image) =>
          Buffer.from(
            await (
              await fetch(`${base}/v1/collections/${ID}/images/${image.imageId}/thumbnail`)
            ).arrayBuffer(),
          ).toString('base64'),
        ),
      );
      const categories = (await api<{ categories: { name: string }[] }>(`/v1/collections/${ID}`)).categories;
      const labels = [
        ...new Set([
          ...ranked.top.flatMap((image) => (image.category ? [image.category] : [])),
          ...categories.map((category) => category.name),
        ]),
      ];
      type Answer = {
        labels: { label: string; before: number; after: number; logitChange: number }[];
        predictedBefore: string;
        predictedAfter: string;
      };
      const zeroed = await post<{ images: Answer[] }>('/v1/interventions', {
        images: thumbnails,
        edits: [{ neuron, op: 'zero' }],
        labels,
        embedding: false,
      });
      await page.click('#ablation-run');
      await page.locator('#ablation-verdict').waitFor({ timeout: 60_000 });
      t.same(
        await page.locator('#ablation-table tbody tr').evaluateAll((trs) =>
          trs.map((tr) => ({
            imageId: Number(tr.getAttribute('data-image-id')),
            before: Number(tr.getAttribute('data-before')),
            after: Number(tr.getAttribute('data-after')),
            logitChange: Number(tr.getAttribute('data-logit-change')),
            answer: tr.getAttribute('data-answer'),
          })),
        ),
        ranked.top.map((image, i) => {
          const own = zeroed.images[i].labels.find((label) => label.label === image.category);
          return {
            imageId: image.imageId,
            before: own?.before,
            after: own?.after,
            logitChange: own?.logitChange,
            answer: `${zeroed.images[i].predictedBefore} → ${zeroed.images[i].predictedAfter}`,
          };
        }),
        'zeroed on its top images: the API’s probabilities and logit change of each image’s category',
      );
      await shot('neuron-neighbours-1280');
      const next = byActivations.neighbours[0].neuron;
      await page.locator(`#neighbours-activations a[data-neuron="${next}"]`).click();
      await page
        .locator('#neuron-about h3')
        .filter({ hasText: `#${next} ` })
        .waitFor();
      t.equal(
        new URL(page.url()).hash,
        `#/neuron/${next}/${ID}`,
        'a neighbour opens its page, same collection',
      );
    },
  );

  await t.test('neurons: the list, its search, filters, sort and pages, each row a link', async (t) => {
    type List = {
      total: number;
      families: string[];
      neurons: { id: number; label: string | null; family: string | null; lexical: boolean }[];
    };
    const rows = () =>
      page
        .locator('#neurons-table tbody tr')
        .evaluateAll((trs) => trs.map((tr) => Number(tr.getAttribute('data-neuron'))));
    const ids = (list: List) => list.neurons.map((row) => row.id);
    const shows = async (list: List, what: string) => {
      const expected = JSON.stringify(ids(list));
      await until(
        page,
        `JSON.stringify([...document.querySelectorAll('#neurons-table tbody tr')].map((tr) => Number(tr.dataset.neuron))) === ${JSON.stringify(expected)}`,
      );
      t.same(await rows(), ids(list), `${what}: the API’s ${list.neurons.length} rows`);
    };

    await page.click('nav a[data-view="neurons"]');
    const all = await api<List>('/v1/neurons?limit=50');
    await shows(all, 'by id');
    t.same(
      await page
        .locator('select[name=family] option')
        .evaluateAll((options) => options.map((option) => option.getAttribute('value'))),
      ['', ...all.families, 'none'],
      'the families of the catalogue to filter by',
    );
    t.match(await page.locator('#neurons-summary').textContent(), `of ${all.total}`);

    // A label search, a family, lexical or not, sorted by the measure over the test's collection:
    // the words of the first labelled neuron's label, its family and its lexical flag.
    const row = all.neurons.find((neuron) => neuron.label && neuron.family) ?? all.neurons[0];
    const word = (row.label ?? 'red').split(/\s+/)[0];
    const family = row.family ?? 'none';
    const lexical = String(row.lexical);
    await page.fill('input[name=q]', word);
    await page.selectOption('select[name=family]', family);
    await page.selectOption('select[name=lexical]', lexical);
    await page.selectOption('select[name=sort]', 'multimodality');
    await page.selectOption('select[name=collection]', ID);
    await page.click('#neurons-form button[type=submit]');
    const filtered = await api<List>(
      `/v1/neurons?limit=50&q=${encodeURIComponent(word)}&family=${family}&lexical=${lexical}&sort=multimodality&collection=${ID}`,
    );
    t.ok(ids(filtered).includes(row.id), `neuron ${row.id} passes its own filters`);
    await shows(filtered, `“${word}”, ${family}, lexical ${lexical}, by multimodality over ${ID}`);
    t.match(new URL(page.url()).hash, /^#\/neurons\/.*sort%3Dmultimodality/, 'the choices are in the URL');

    // Pages of 50.
    await open('neurons');
    await page.locator('#neurons-table tbody tr').first().waitFor();
    await page.click('nav.pages a[rel=next]');
    await shows(await api<List>('/v1/neurons?limit=50&offset=50'), 'the second page');
    await page.click('nav.pages a[rel=prev]');
    await shows(all, 'back to the first');
    await shot('neurons-1280');

    const first = all.neurons[0].id;
    await page.locator(`#neurons-table tr[data-neuron="${first}"] a`).first().click();
    await page
      .locator('#neuron-about h3')
      .filter({ hasText: `#${first} ` })
      .waitFor();
    t.pass(`a row opens neuron ${first}’s page`);

    // A choice the API refuses shows its message.
    const message = (await (await fetch(`${base}/v1/neurons?sort=multimodality`)).json()) as {
      message: string;
    };
    await open(`neurons/${encodeURIComponent('sort=multimodality')}`);
    await page.locator('#error').waitFor({ state: 'visible' });
    t.match(await page.locator('#error-message').textContent(), message.message, 'the API’s message');
  });

  await t.test('image: a neuron’s map over an image of the collection', async (t) => {
    const imageId = 0;
    const response = await fetch(`${base}/v1/collections/${ID}/images/${imageId}/heatmap?neuron=${neuron}`);
    t.equal(response.status, 200);
    await response.arrayBuffer();
    const max = Number(response.headers.get('x-neuron-max'));
    await open(`image/${ID}/${imageId}/${neuron}`);
    await page.locator(`#heatmap[data-neuron="${neuron}"]`).waitFor();
    await allLoaded('#collection-image img');
    t.equal(Number(await page.locator('#heatmap').getAttribute('data-max')), max, 'the map’s maximum');
    t.ok((await page.locator('#map-suggestions .chip').count()) > 0, 'neurons to try for its category');
    const like = await api<{ results: { imageId: number; score: number }[] }>(
      `/v1/collections/${ID}/search?image=${imageId}&k=9`,
    );
    await page.locator('#similar-images .tile').first().waitFor();
    t.same(
      await tiles(page, '#similar-images'),
      like.results
        .filter((result) => result.imageId !== imageId)
        .map((result) => ({ imageId: result.imageId, value: result.score })),
      'the images most like it, in the API’s order with its cosines',
    );
    const other = Number(await page.locator('#map-suggestions .chip').last().getAttribute('data-neuron'));
    await page.locator('#map-suggestions .chip').last().click();
    await page.locator(`#heatmap[data-neuron="${other}"]`).waitFor();
    await allLoaded('#heatmap');
    t.equal(new URL(page.url()).hash, `#/image/${ID}/${imageId}/${other}`, 'the URL follows the neuron');
    await shot('image-map-1280');

    // An uploaded image: the map of the neuron that contributes most to the text, then another.
    const [star] = (await shapes('red')).slice(2);
    const image = `data:image/png;base64,${star.buffer.toString('base64')}`;
    const attribution = await post<{ top: { neuron: number }[] }>('/v1/attribution/image', {
      image,
      text: 'a red circle',
      topK: 8,
    });
    const top = attribution.top[0].neuron;
    const maxOf = async (id: number) => {
      const answer = await fetch(`${base}/v1/neurons/${id}/heatmap`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ image }),
      });
      t.equal(answer.status, 200, `POST /v1/neurons/${id}/heatmap`);
      await answer.arrayBuffer();
      return Number(answer.headers.get('x-neuron-max'));
    };
    await open('image');
    await page.setInputFiles('input[name=image]', star);
    await page.click('text=Analyse');
    await page.locator(`#upload-heatmap[data-neuron="${top}"]`).waitFor();
    await allLoaded('#upload-map img');
    t.equal(
      Number(await page.locator('#upload-heatmap').getAttribute('data-max')),
      await maxOf(top),
      `the map of neuron ${top}, the largest contribution, with the API's maximum`,
    );
    const next = attribution.top[1].neuron;
    await page.locator(`#upload-map-suggestions .chip[data-neuron="${next}"]`).click();
    await page.locator(`#upload-heatmap[data-neuron="${next}"]`).waitFor();
    await allLoaded('#upload-heatmap');
    t.equal(
      Number(await page.locator('#upload-heatmap').getAttribute('data-max')),
      await maxOf(next),
      `then neuron ${next}'s`,
    );
    t.ok(await page.locator('#error').isHidden(), 'no error');
    await shot('image-upload-map-1280');
  });

  await t.test('the views fit 1280 px and 390 px', async (t) => {
    const ready: Record<string, string> = {
      [`collections/${ID}`]: '#categories .chip',
      [`neuron/${neuron}/${ID}`]: '#histogram rect',
      [`image/${ID}/0/${neuron}`]: '#heatmap[data-neuron]',
      [`neurons/${encodeURIComponent(`collection=${ID}&sort=multimodality`)}`]: '#neurons-table tbody tr',
    };
    for (const width of [1280, 390]) {
      await page.setViewportSize({ width, height: width > 500 ? 900 : 844 });
      for (const [view, selector] of Object.entries(ready)) {
        await open(view);
        await page.locator(selector).first().waitFor();
        const [scroll, inner] = (await page.evaluate(
          '[document.documentElement.scrollWidth, innerWidth]',
        )) as [number, number];
        t.ok(scroll <= inner, `${view} at ${width} px: content ${scroll} px wide`);
        if (width < 1280) await shot(`${view.split('/')[0]}-pictures-${width}`);
      }
    }
  });

  t.same(pageErrors, [], 'no uncaught errors in the page');
  t.same(cspViolations, [], 'no Content-Security-Policy violations');
  t.same(offOrigin, [], 'no request leaves the service');
});

const idsAndValues = (images: readonly Ranked[]) => images.map(({ imageId, value }) => ({ imageId, value }));

/** The tiles under `selector`: image ids and values, as the page carries them. */
function tiles(page: Page, selector: string): Promise<{ imageId: number; value: number }[]> {
  return page.locator(`${selector} .tile`).evaluateAll((figures) =>
    figures.map((figure) => ({
      imageId: Number(figure.getAttribute('data-image-id')),
      value: Number(figure.getAttribute('data-value')),
    })),
  );
}

/** Builds with variables set only while the plugins read them. */
async function withEnv<T>(env: Record<string, string>, build: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(env).map((name) => [name, process.env[name]]));
  Object.assign(process.env, env);
  try {
    return await build();
  } finally {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

/** Resolves once `expression` is true in the page (page.waitForFunction needs eval, which the CSP forbids). */
async function until(page: Page, expression: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await page.evaluate(expression))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${expression}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
