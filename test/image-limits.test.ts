/**
 * Bounded decoding (issue 21, failure 5): an image is refused from its header when width × height
 * exceeds MAX_IMAGE_PIXELS (a 47 KB PNG can declare 7,000 × 7,000 pixels, 147 MB decoded), with a
 * 413 naming the limit, whether uploaded or sent in base64; the limit is configurable; and at most
 * IMAGE_DECODE_CONCURRENCY images are decoded at once (the semaphore in front of the decoder).
 * The memory this bounds is measured by bench/image-memory.ts.
 */
import sharp from 'sharp';
import t from 'tap';
import { buildTestApp } from './helpers/app.js';
import { loadConfig } from '../src/config.js';
import { MAX_IMAGE_PIXELS } from '../src/limits.js';
import { Semaphore } from '../src/clip/semaphore.js';

function png(width: number, height: number): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: '#fa0' } })
    .png({ compressionLevel: 9 })
    .toBuffer();
}

function multipart(image: Buffer): { payload: Buffer; headers: Record<string, string> } {
  const boundary = 'imagelimits';
  const head = `--${boundary}\r\ncontent-disposition: form-data; name="image"; filename="x.png"\r\ncontent-type: image/png\r\n\r\n`;
  return {
    payload: Buffer.concat([Buffer.from(head), image, Buffer.from(`\r\n--${boundary}--\r\n`)]),
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
  };
}

t.test('the 7,000 × 7,000 PNG of the issue is a 413 naming the limit', async (t) => {
  t.ok(7000 * 7000 > MAX_IMAGE_PIXELS, `the default limit (${MAX_IMAGE_PIXELS}) is below 49 Mpx`);
  t.equal(loadConfig({}).maxImagePixels, MAX_IMAGE_PIXELS, 'MAX_IMAGE_PIXELS unset: the default');
  t.equal(loadConfig({ MAX_IMAGE_PIXELS: '1000' }).maxImagePixels, 1000);
  t.equal(loadConfig({}).imageDecodeConcurrency, 2);
  t.throws(() => loadConfig({ IMAGE_DECODE_CONCURRENCY: '0' }), /IMAGE_DECODE_CONCURRENCY/);

  const app = await buildTestApp();
  t.teardown(() => app.close());
  const bomb = await png(7000, 7000);
  t.ok(bomb.length < 1024 * 1024, `a small file (${bomb.length} bytes)`);
  const asJson = await app.inject({
    method: 'POST',
    url: '/v1/embed/image',
    payload: { image: bomb.toString('base64') },
  });
  const upload = await app.inject({ method: 'POST', url: '/v1/embed/image', ...multipart(bomb) });
  for (const [how, answer] of [
    ['base64', asJson],
    ['multipart', upload],
  ] as const) {
    t.equal(answer.statusCode, 413, `${how}: 413`);
    t.match(
      answer.json(),
      {
        message: new RegExp(
          `7000×7000 = 49000000 pixels; the limit is ${MAX_IMAGE_PIXELS} pixels \\(MAX_IMAGE_PIXELS\\)`,
        ),
      },
      `${how}: the message names the size and the limit`,
    );
  }
  for (const url of ['/v1/classify', '/v1/attribution/image']) {
    const extra = url === '/v1/classify' ? { labels: ['a', 'b'] } : { text: 'a yellow star' };
    const answer = await app.inject({
      method: 'POST',
      url,
      payload: { image: bomb.toString('base64'), ...extra },
    });
    t.equal(answer.statusCode, 413, `${url}: 413 (${answer.body.slice(0, 120)})`);
  }
  const fine = await app.inject({
    method: 'POST',
    url: '/v1/embed/image',
    payload: { image: (await png(300, 200)).toString('base64') },
  });
  t.equal(fine.statusCode, 200, 'an ordinary image is still embedded');
});

t.test('the pixel limit is configurable', async (t) => {
  const app = await buildTestApp({ maxImagePixels: 100 * 100 });
  t.teardown(() => app.close());
  const at = await app.inject({
    method: 'POST',
    url: '/v1/embed/image',
    payload: { image: (await png(100, 100)).toString('base64') },
  });
  t.equal(at.statusCode, 200, 'exactly at the limit: accepted');
  const over = await app.inject({
    method: 'POST',
    url: '/v1/embed/image',
    payload: { image: (await png(101, 100)).toString('base64') },
  });
  t.equal(over.statusCode, 413, 'one column more: 413');
  t.match(over.json(), { message: /the limit is 10000 pixels/ });
});

t.test('at most IMAGE_DECODE_CONCURRENCY images are decoded at once', async (t) => {
  const app = await buildTestApp({ imageDecodeConcurrency: 1 });
  t.teardown(() => app.close());
  t.equal(app.encoders.decodes.limit, 1, 'the app’s decoder gate has the configured size');
  const image = (await png(1200, 900)).toString('base64');
  let most = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      most = Math.max(most, app.encoders.decodes.inUse);
      await new Promise((r) => setImmediate(r));
    }
  })();
  const answers = await Promise.all(
    Array.from({ length: 6 }, () =>
      app.inject({ method: 'POST', url: '/v1/embed/image', payload: { image } }),
    ),
  );
  sampling = false;
  await sampler;
  t.same(
    answers.map((a) => a.statusCode),
    Array(6).fill(200),
    'all six answered',
  );
  t.equal(most, 1, 'never more than one decode at once');

  // The semaphore itself: limit respected, turns in arrival order, released on failure too.
  const gate = new Semaphore(2);
  let running = 0;
  let peak = 0;
  const order: number[] = [];
  const tasks = Array.from({ length: 8 }, (_, i) =>
    gate
      .run(async () => {
        running++;
        peak = Math.max(peak, running);
        order.push(i);
        await new Promise((r) => setTimeout(r, 5));
        running--;
        if (i === 3) throw new Error('task 3 fails');
        return i;
      })
      .catch(() => -1),
  );
  t.same(await Promise.all(tasks), [0, 1, 2, -1, 4, 5, 6, 7]);
  t.equal(peak, 2, 'two at a time');
  t.same(order, [0, 1, 2, 3, 4, 5, 6, 7], 'first come, first served');
  t.equal(gate.inUse, 0, 'every turn given back, the failed one too');
  t.throws(() => new Semaphore(0), RangeError);
});
