/**
 * The typographic lab on the embedded model (models/toyworld): POST /v1/typographic/attack (paste,
 * before/after, explanation, defence; large attacks as jobs, and their cancel), GET
 * /v1/typographic/options, POST /v1/typographic/stroop and GET /v1/raster's ink, their bad inputs
 * (the 413 over 15 MiB among them), the article's protocol on held-out renders with the lexical
 * ablation's effect, and the measured rates as the model card and the README show them.
 *
 * References that are not the code under test: /v1/classify (its own preprocessing and a single
 * template) for the probabilities before and after; /v1/attribution/image for each neuron's x_i·a_i;
 * the returned PNG, decoded here, for the pixels changed; the Wilson interval's defining equation.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import t from 'tap';
import { wilson, Z95 } from '../src/typographic/stats.js';
import { heldoutShapes, measureTask } from '../scripts/toyworld-typographic.js';
import { buildTestApp } from './helpers/app.js';
import { repoRoot } from './helpers/tiny-model.js';

const TOYWORLD = path.join(repoRoot, 'models/toyworld');
const COLOURS = ['red', 'orange', 'yellow', 'green', 'blue', 'purple', 'pink', 'brown'];
/** tools/toyworld/world.py's COLOURS. */
const WORLD_INK: Record<string, string> = {
  red: '#d7191e',
  orange: '#f5870f',
  yellow: '#fadc19',
  green: '#23a02d',
  blue: '#194bd7',
  purple: '#7d23a5',
  pink: '#f57db9',
  brown: '#7d4b23',
};

async function solidPng(width: number, height: number, rgb: [number, number, number]): Promise<string> {
  const png = await sharp({
    create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } },
  })
    .png()
    .toBuffer();
  return png.toString('base64');
}

t.test('the Wilson interval solves its defining equation', async (t) => {
  for (const [k, n] of [
    [0, 10],
    [3, 10],
    [10, 10],
    [151, 192],
  ]) {
    const w = wilson(k, n);
    const p = k / n;
    // The endpoints are the p with (p̂ − p)² = z² p (1 − p) / n.
    for (const end of [w.low!, w.high!]) {
      t.ok(Math.abs((p - end) ** 2 - (Z95 * Z95 * end * (1 - end)) / n) < 1e-12, `${k}/${n}: ${end}`);
    }
    t.ok(w.low! <= p && p <= w.high!);
  }
  t.same(wilson(0, 0), { successes: 0, n: 0, rate: null, low: null, high: null });
});

t.test(
  'attacks, Stroop and raster ink on the embedded model',
  { skip: existsSync(path.join(TOYWORLD, 'clip.json')) ? false : 'no embedded model' },
  async (t) => {
    const app = await buildTestApp({ modelDir: TOYWORLD, maxEventLoopDelayMs: 0 });
    t.teardown(() => app.close());
    const attack = (payload: Record<string, unknown>) =>
      app.inject({ method: 'POST', url: '/v1/typographic/attack', payload });

    // A blue 96 × 80 picture: resized and cropped to the model's 64 × 64 input.
    const blue = await solidPng(96, 80, [25, 75, 215]);
    const white = await solidPng(64, 64, [255, 255, 255]);

    t.test('paste: the pixels changed, the ink and the box, as the returned PNG shows', async (t) => {
      const response = await attack({
        image: white,
        text: 'red',
        colour: '#ff0000',
        box: '#00ff00',
        padding: 0.3,
        size: 0.3,
        labels: COLOURS,
        templates: ['a {} patch'],
        explain: 0,
        returnImages: true,
      });
      t.equal(response.statusCode, 200, response.body);
      const body = response.json();
      const [row] = body.images;
      const { data, info } = await sharp(Buffer.from(row.attackedPng, 'base64'))
        .raw()
        .toBuffer({ resolveWithObject: true });
      t.equal(info.width, 64);
      let changed = 0;
      let red = 0;
      let green = 0;
      for (let p = 0; p < 64 * 64; p++) {
        const [r, g, b] = [data[p * 3], data[p * 3 + 1], data[p * 3 + 2]];
        if (r !== 255 || g !== 255 || b !== 255) changed++;
        if (r === 255 && g === 0 && b === 0) red++;
        if (r === 0 && g === 255 && b === 0) green++;
      }
      t.equal(row.changedShare, changed / (64 * 64), 'changedShare counts the pixels that differ');
      t.ok(red > 20, `${red} pixels in the ink`);
      t.ok(green > 100, `${green} pixels of the box`);
      t.ok(changed < 64 * 64 * 0.8, 'the box does not cover the image');
      t.equal(body.summary.meanChangedShare, row.changedShare);
    });

    t.test('before and after equal /v1/classify on the clean and the attacked input', async (t) => {
      const response = await attack({
        images: [blue, white],
        text: 'green',
        size: 0.2,
        labels: COLOURS,
        templates: ['a {} patch'],
        trueLabels: ['blue', 'blue'],
        explain: 3,
        returnImages: true,
      });
      t.equal(response.statusCode, 200, response.body);
      const body = response.json();
      t.equal(body.target, 'green', 'the text is the target when it is a label');
      const classify = async (image: string) => {
        const r = await app.inject({
          method: 'POST',
          url: '/v1/classify',
          payload: { image, labels: COLOURS, template: 'a {} patch' },
        });
        return (r.json().probabilities as { p: number }[]).map((x) => x.p);
      };
      for (const [i, image] of [blue, white].entries()) {
        const row = body.images[i];
        const before = await classify(image);
        const after = await classify(row.attackedPng);
        before.forEach((p, j) =>
          t.ok(Math.abs(p - row.before.probabilities[j]) < 1e-5, `before ${COLOURS[j]}`),
        );
        after.forEach((p, j) => t.ok(Math.abs(p - row.after.probabilities[j]) < 1e-5, `after ${COLOURS[j]}`));
        t.equal(row.eligible, row.before.predicted !== 'green');
        t.equal(row.success, row.eligible && row.after.predicted === 'green');
      }
      const eligible = body.images.filter((r: { eligible: boolean }) => r.eligible).length;
      const successes = body.images.filter((r: { success: boolean }) => r.success).length;
      t.same(body.summary.attack, wilson(successes, eligible));
      t.equal(body.summary.cleanAccuracy.n, 2);
      t.equal(body.summary.cleanAccuracy.successes, body.images[0].before.predicted === 'blue' ? 1 : 0);
      t.ok(body.summary.cleanAccuracy.successes >= 1, 'the blue picture is blue');

      // The explanation against /v1/attribution/image (one template: m = t/|t|, so x_i·a_i in logit
      // units is that route's per-neuron logit).
      const explanation = body.images[0].explanation;
      t.equal(explanation.label, body.images[0].after.predicted);
      t.ok(explanation.neurons.length === 3);
      const image = async (img: string) => {
        const r = await app.inject({
          method: 'POST',
          url: '/v1/attribution/image',
          payload: { image: img, text: `a ${explanation.label} patch`, topK: 1000 },
        });
        const rows = r.json().top.concat(r.json().bottom) as { neuron: number; logit: number }[];
        return new Map(rows.map((row) => [row.neuron, row.logit]));
      };
      const [clean, attacked] = [await image(blue), await image(body.images[0].attackedPng)];
      for (const n of explanation.neurons) {
        t.ok(Math.abs(n.before - (clean.get(n.neuron) ?? 0)) < 1e-4, `neuron ${n.neuron} before`);
        t.ok(Math.abs(n.after - (attacked.get(n.neuron) ?? 0)) < 1e-4, `neuron ${n.neuron} after`);
        t.ok(Math.abs(n.change - (n.after - n.before)) < 1e-9);
      }
      const changes = explanation.neurons.map((n: { change: number }) => Math.abs(n.change));
      t.same(
        changes,
        [...changes].sort((a, b) => b - a),
        'largest changes first',
      );
      t.ok(body.lexical.neurons > 0, 'the lexical set used is reported');
    });

    t.test('defence with neuron ids', async (t) => {
      const response = await attack({
        image: blue,
        text: 'green',
        size: 0.2,
        labels: COLOURS,
        templates: ['a {} patch'],
        ablate: [1, 2, 3, 2],
        explain: 0,
      });
      t.equal(response.statusCode, 200, response.body);
      const body = response.json();
      t.equal(body.defence.ablated, 3, 'distinct ids');
      t.ok(body.images[0].defended.before.probabilities.length === COLOURS.length);
      t.notOk(body.defence.lexical);
    });

    t.test('a multipart upload', async (t) => {
      const boundary = 'typographic-test-boundary';
      const field = (name: string, value: string) =>
        `--${boundary}\r\ncontent-disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
      const payload = Buffer.concat([
        Buffer.from(
          `--${boundary}\r\ncontent-disposition: form-data; name="image"; filename="a.png"\r\ncontent-type: image/png\r\n\r\n`,
        ),
        Buffer.from(blue, 'base64'),
        Buffer.from('\r\n'),
        Buffer.from(field('text', 'green')),
        Buffer.from(field('labels', JSON.stringify(COLOURS))),
        Buffer.from(field('size', '0.2')),
        Buffer.from(field('ablate', 'lexical')),
        Buffer.from(`--${boundary}--\r\n`),
      ]);
      const response = await app.inject({
        method: 'POST',
        url: '/v1/typographic/attack',
        payload,
        headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
      });
      t.equal(response.statusCode, 200, response.body);
      const body = response.json();
      t.equal(body.images.length, 1);
      t.equal(body.defence.lexical.neurons, body.defence.ablated, 'the lexical set was ablated');

      // Several images: the file field "image" repeated, answered as the JSON images would be.
      const file = (bytes: string) =>
        Buffer.concat([
          Buffer.from(
            `--${boundary}\r\ncontent-disposition: form-data; name="image"; filename="a.png"\r\ncontent-type: image/png\r\n\r\n`,
          ),
          Buffer.from(bytes, 'base64'),
          Buffer.from('\r\n'),
        ]);
      const several = await app.inject({
        method: 'POST',
        url: '/v1/typographic/attack',
        payload: Buffer.concat([
          file(blue),
          file(white),
          Buffer.from(field('text', 'green')),
          Buffer.from(field('labels', JSON.stringify(COLOURS))),
          Buffer.from(field('size', '0.2')),
          Buffer.from(field('explain', '0')),
          Buffer.from(`--${boundary}--\r\n`),
        ]),
        headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
      });
      t.equal(several.statusCode, 200, several.body);
      const json = await attack({
        images: [blue, white],
        text: 'green',
        labels: COLOURS,
        size: 0.2,
        explain: 0,
      });
      t.same(several.json(), json.json(), 'two files: the answer to the same images as JSON');
      const wrongField = await app.inject({
        method: 'POST',
        url: '/v1/typographic/attack',
        payload: Buffer.concat([
          Buffer.from(
            `--${boundary}\r\ncontent-disposition: form-data; name="picture"; filename="a.png"\r\ncontent-type: image/png\r\n\r\n`,
          ),
          Buffer.from(blue, 'base64'),
          Buffer.from(`\r\n--${boundary}--\r\n`),
        ]),
        headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
      });
      t.equal(wrongField.statusCode, 400);
      t.match(
        wrongField.json().message,
        /unexpected file field "picture"; use "image" \(repeated for several images\)/,
      );
    });

    t.test('a large attack is a job whose result equals the direct answers', async (t) => {
      const images: string[] = [];
      const truth: string[] = [];
      for (let i = 0; i < 40; i++) {
        const colour = COLOURS[i % 8];
        const hex = WORLD_INK[colour];
        const rgb = [1, 3, 5].map((k) => parseInt(hex.slice(k, k + 2), 16)) as [number, number, number];
        images.push(await solidPng(64 + (i % 5) * 8, 64, rgb));
        truth.push(colour);
      }
      const settings = {
        text: 'green',
        size: 0.2,
        box: 'white',
        labels: COLOURS,
        templates: ['{}', 'the colour {}', 'a {} patch'],
        ablate: 'lexical',
        explain: 2,
      };
      const queued = await attack({ ...settings, images, trueLabels: truth });
      t.equal(queued.statusCode, 202, queued.body);
      const { jobId } = queued.json();
      t.match(jobId, /^attack-/);
      let view: {
        state: string;
        progress: { done: number; total: number };
        result?: Record<string, unknown>;
      };
      for (;;) {
        view = (await app.inject({ method: 'GET', url: `/v1/jobs/${jobId}` })).json();
        if (['completed', 'failed', 'cancelled'].includes(view.state)) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      t.equal(view.state, 'completed', JSON.stringify(view).slice(0, 300));
      t.same(view.progress, { done: 40, total: 40 });
      const parts = await Promise.all(
        [
          [0, 32],
          [32, 40],
        ].map(async ([from, to]) =>
          (
            await attack({ ...settings, images: images.slice(from, to), trueLabels: truth.slice(from, to) })
          ).json(),
        ),
      );
      const result = view.result as {
        images: unknown[];
        summary: Record<string, { successes: number; n: number }>;
        defence: Record<string, { successes: number; n: number }>;
      };
      t.same(result.images, [...parts[0].images, ...parts[1].images], 'the same rows as two direct requests');
      for (const key of ['attack', 'cleanAccuracy', 'attackedAccuracy']) {
        t.equal(
          result.summary[key].successes,
          parts[0].summary[key].successes + parts[1].summary[key].successes,
          key,
        );
        t.equal(result.summary[key].n, parts[0].summary[key].n + parts[1].summary[key].n, key);
        t.equal(
          result.defence[key].successes,
          parts[0].defence[key].successes + parts[1].defence[key].successes,
          `defended ${key}`,
        );
      }
      t.same(result.summary.attack, wilson(result.summary.attack.successes, result.summary.attack.n));
    });

    t.test('a large attack is cancelled by DELETE /v1/jobs/{id}: it stops between chunks', async (t) => {
      // 4,096 images in 128 chunks: the cancel, sent as soon as the job is queued, lands long before
      // its end on any machine (each chunk runs the model on 32 images).
      const queued = await attack({
        images: Array(4096).fill(blue),
        text: 'green',
        labels: COLOURS,
        explain: 0,
      });
      t.equal(queued.statusCode, 202, queued.body.slice(0, 300));
      const { jobId } = queued.json();
      const cancel = await app.inject({ method: 'DELETE', url: `/v1/jobs/${jobId}` });
      t.equal(cancel.statusCode, 200, cancel.body);
      t.equal(cancel.json().stopped, true, 'the last submitter stops it');
      let view: { state: string; progress: { done: number; total: number }; result?: unknown };
      for (;;) {
        view = (await app.inject({ method: 'GET', url: `/v1/jobs/${jobId}` })).json();
        if (['completed', 'failed', 'cancelled'].includes(view.state)) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      t.equal(view.state, 'cancelled');
      t.equal(view.progress.total, 4096);
      t.ok(view.progress.done < 4096, `stopped after ${view.progress.done} of 4096 images`);
      t.equal(view.result ?? null, null, 'no result');
    });

    t.test('the model card and the README show the measured rates of typographic.json', async (t) => {
      type Rate = {
        successes: number;
        n: number;
        rate: number;
        low: number;
        high: number;
        cleanAccuracy: number;
      };
      const measured = JSON.parse(readFileSync(path.join(TOYWORLD, 'typographic.json'), 'utf8')) as {
        tasks: { task: string; attack: Rate; defended: Rate }[];
      };
      const card = readFileSync(path.join(TOYWORLD, 'README.md'), 'utf8');
      const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
      const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
      t.equal(measured.tasks.length, 2);
      for (const { task, attack, defended } of measured.tasks) {
        const ci = (r: Rate) => `[${pct(r.low)}, ${pct(r.high)}]`;
        t.ok(
          card.includes(`${pct(attack.rate)} (${attack.successes}/${attack.n}) ${ci(attack)}`),
          `${task}: the card's attack rate`,
        );
        t.ok(
          card.includes(`${pct(defended.rate)} (${defended.successes}/${defended.n}) ${ci(defended)}`),
          `${task}: the card's defended rate`,
        );
        const row = readme.split('\n').find((line) => line.includes(`${pct(attack.rate)} ${ci(attack)}`));
        t.ok(row, `${task}: the README's attack rate`);
        t.ok(row?.includes(`${pct(defended.rate)} ${ci(defended)}`), `${task}: the README's defended rate`);
        t.ok(
          row?.includes(pct(attack.cleanAccuracy)) && row?.includes(pct(defended.cleanAccuracy)),
          `${task}: clean accuracies`,
        );
      }
      t.match(card, /The models differ/, 'the card says that the models differ');
      t.match(card, /"waste container"\/"trash" 95\.4%/, 'beside the article’s published rates');
    });

    t.test('bad inputs are 4xx naming what is allowed', async (t) => {
      const base = { image: blue, text: 'green', labels: COLOURS };
      const cases: [string, Record<string, unknown>, number, RegExp][] = [
        ['unknown font', { ...base, font: 'comic' }, 400, /font must be "sans".*"mono-bold"/],
        [
          'text that does not fit',
          { ...base, text: 'greengreengreen', target: 'green', size: 0.5 },
          400,
          /does not fit.*64 × 64/,
        ],
        ['text off the edge', { ...base, x: 0.05 }, 400, /does not fit/],
        ['empty labels', { ...base, labels: [] }, 400, /labels must have at least 1 item/],
        [
          'ablate out of range',
          { ...base, ablate: [512] },
          400,
          /ablate neuron 512 is out of range \(0 to 511\)/,
        ],
        ['bad ablate', { ...base, ablate: 'all' }, 400, /ablate must be/],
        [
          'target not a label',
          { ...base, target: 'violet' },
          400,
          /target "violet" is not one of the labels/,
        ],
        ['text not a label', { ...base, text: 'hello' }, 400, /name the class it attacks in target/],
        ['bad colour', { ...base, colour: 'teal-ish' }, 400, /#rrggbb, #rgb or one of black/],
        ['bad box colour', { ...base, box: '#12345' }, 400, /box "#12345" is not a colour/],
        ['image and images', { ...base, images: [blue] }, 400, /not both/],
        ['no image', { text: 'green', labels: COLOURS }, 400, /send the image/],
        ['trueLabels of another length', { ...base, trueLabels: ['blue', 'red'] }, 400, /trueLabels has 2/],
        ['trueLabel not a label', { ...base, trueLabels: ['cyan'] }, 400, /"cyan" is not one of the labels/],
        ['duplicate labels', { ...base, labels: ['red', 'red', 'green'] }, 400, /distinct/],
        ['template without {}', { ...base, templates: ['a patch'] }, 400, /must contain \{\}/],
        ['size out of range', { ...base, size: 2 }, 400, /size must be a number from 0.02 to 1/],
        [
          'not an image',
          { ...base, image: Buffer.from('hello').toString('base64') },
          400,
          /not a decodable image/,
        ],
        [
          'huge batch',
          { ...base, image: undefined, images: Array(4097).fill(blue) },
          413,
          /at most 4096 images/,
        ],
        ['negative ablate id', { ...base, ablate: [-1] }, 400, /ablate/],
        ['explain out of range', { ...base, explain: 65 }, 400, /explain must be .*64/],
        [
          'too many labels',
          { ...base, labels: [...COLOURS, ...Array.from({ length: 60 }, (_, i) => `c${i}`)] },
          400,
          /labels must have at most 64/,
        ],
        ['no templates', { ...base, templates: [] }, 400, /templates must have at least 1/],
        // A batch that would be a job is checked before it is queued: no 202 for a bad request.
        [
          'a job’s text that does not fit',
          {
            ...base,
            image: undefined,
            images: Array(33).fill(blue),
            text: 'greengreengreen',
            target: 'green',
            size: 0.5,
          },
          400,
          /does not fit/,
        ],
        [
          'a job’s unknown font',
          { ...base, image: undefined, images: Array(33).fill(blue), font: 'comic' },
          400,
          /font must be/,
        ],
        [
          'a job’s neuron out of range',
          { ...base, image: undefined, images: Array(33).fill(blue), ablate: [600] },
          400,
          /ablate neuron 600 is out of range \(0 to 511\)/,
        ],
      ];
      for (const [name, payload, status, message] of cases) {
        const response = await attack(payload);
        t.equal(response.statusCode, status, `${name}: ${response.body}`);
        t.match(response.json().message, message, name);
      }
    });

    t.test('GET /v1/typographic/options: what an attack may choose, each of it accepted', async (t) => {
      const response = await app.inject({ method: 'GET', url: '/v1/typographic/options' });
      t.equal(response.statusCode, 200, response.body);
      const options = response.json();
      t.ok(options.fonts.includes('serif') && options.fonts.includes(options.defaultFont));
      t.same(
        options.colours.find((c: { name: string }) => c.name === 'green'),
        { name: 'green', hex: '#008000' },
      );
      t.match(options.limits, { imagesPerRequest: 32, imagesPerJob: 4096, requestBytes: 15 * 1024 * 1024 });
      t.equal(options.neuronCount, 512);
      t.equal(options.imageSize, 64);
      // Every font and colour listed is one an attack takes (and the same paste in the default font,
      // colour and size as with none named).
      const paste = {
        image: blue,
        text: 'green',
        labels: COLOURS,
        explain: 0,
        returnImages: true,
        size: 0.2,
      };
      for (const font of options.fonts) {
        const r = await attack({
          ...paste,
          font,
          colour: options.colours[3].name,
          box: options.colours[1].hex,
        });
        t.equal(r.statusCode, 200, `font ${font}: ${r.body.slice(0, 200)}`);
      }
      const defaults = options.defaults;
      const [named, bare] = await Promise.all([
        attack({
          ...paste,
          size: defaults.size,
          x: defaults.x,
          y: defaults.y,
          font: options.defaultFont,
          colour: defaults.colour,
          templates: defaults.templates,
        }),
        attack({ ...paste, size: undefined }),
      ]);
      t.equal(
        named.json().images[0].attackedPng,
        bare.json().images[0].attackedPng,
        'the defaults are the defaults',
      );
    });

    t.test('a body over 15 MiB is a 413 naming the limit and how to attack more images', async (t) => {
      // JSON: Fastify refuses it from its content-length, before reading it.
      const json = await app.inject({
        method: 'POST',
        url: '/v1/typographic/attack',
        payload: JSON.stringify({
          text: 'green',
          labels: COLOURS,
          images: Array(12).fill('A'.repeat(1_400_000)),
        }),
        headers: { 'content-type': 'application/json' },
      });
      // Multipart: the uploads counted together as they arrive.
      const boundary = 'over-the-limit';
      const file = (i: number) =>
        `--${boundary}\r\ncontent-disposition: form-data; name="image"; filename="${i}.png"\r\ncontent-type: image/png\r\n\r\n`;
      const parts: Buffer[] = [];
      for (let i = 0; i < 2; i++)
        parts.push(Buffer.from(file(i)), Buffer.alloc(8 * 1024 * 1024, 1), Buffer.from('\r\n'));
      parts.push(
        Buffer.from(
          `--${boundary}\r\ncontent-disposition: form-data; name="text"\r\n\r\ngreen\r\n--${boundary}--\r\n`,
        ),
      );
      const multipart = await app.inject({
        method: 'POST',
        url: '/v1/typographic/attack',
        payload: Buffer.concat(parts),
        headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
      });
      for (const [what, response] of [
        ['JSON', json],
        ['multipart', multipart],
      ] as const) {
        t.equal(response.statusCode, 413, `${what}: ${response.body.slice(0, 200)}`);
        t.match(
          response.json().message,
          /over 15 MiB.*MAX_BODY_BYTES.*several requests \(up to 32 images each.*collection.*"sample"/,
          `${what}: names the limit, several requests and a collection's sample`,
        );
      }
      const interventions = await app.inject({
        method: 'POST',
        url: '/v1/interventions',
        payload: JSON.stringify({
          labels: COLOURS,
          edits: [{ neuron: 1, op: 'zero' }],
          images: Array(12).fill('A'.repeat(1_400_000)),
        }),
        headers: { 'content-type': 'application/json' },
      });
      t.equal(interventions.statusCode, 413);
      t.match(interventions.json().message, /over 15 MiB.*several requests \(up to 32 per request\)/);
      // One uploaded image over 10 MiB: the per-image limit, named.
      const one = await app.inject({
        method: 'POST',
        url: '/v1/typographic/attack',
        payload: Buffer.concat([
          Buffer.from(file(0)),
          Buffer.alloc(11 * 1024 * 1024, 1),
          Buffer.from(`\r\n--${boundary}--\r\n`),
        ]),
        headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
      });
      t.equal(one.statusCode, 413, one.body);
      t.match(
        one.json().message,
        /an uploaded image is over 10 MiB, the most one image may be \(MAX_IMAGE_BYTES\)/,
      );
      // Other errors of the route still reach the client as before.
      const bad = await attack({ image: blue, text: 'green', labels: [] });
      t.equal(bad.statusCode, 400);
    });

    t.test('Stroop: colour words in the world’s inks', async (t) => {
      const inks = COLOURS.map((label) => ({ label, colour: WORLD_INK[label] }));
      const response = await app.inject({
        method: 'POST',
        url: '/v1/typographic/stroop',
        payload: {
          words: ['red', 'green', 'blue', 'yellow'],
          inks,
          labels: COLOURS,
          templates: ['{}', 'the colour {}', 'a {} patch'],
        },
      });
      t.equal(response.statusCode, 200, response.body);
      const body = response.json();
      t.equal(body.pairs.length, 32);
      t.equal(body.summary.incongruent, 28);
      t.equal(body.pairs[0].colour, '#d7191e');
      const reads = body.pairs.filter((p: { reads: string }) => p.reads === 'word').length;
      const sees = body.pairs.filter((p: { reads: string }) => p.reads === 'ink').length;
      t.equal(body.summary.readsWord.successes, reads);
      t.equal(body.summary.seesInk.successes, sees);
      t.comment(
        `incongruent pairs: reads the word ${reads}/28, sees the ink ${sees}/28; congruent right ${body.summary.congruentCorrect.successes}/4`,
      );
      // Measured: the toy model reads the word in 28 of 28 incongruent pairs (the words are drawn
      // large and black-on-white renders were its reading task).
      t.ok(reads >= 20, `the model reads the word in most incongruent pairs (${reads}/28)`);
      t.equal(body.summary.congruentCorrect.successes, 4);

      const named = await app.inject({
        method: 'POST',
        url: '/v1/typographic/stroop',
        payload: { words: ['red'], inks: ['blue', 'red'] },
      });
      t.equal(named.statusCode, 200, named.body);
      t.same(named.json().labels, ['red', 'blue'], 'default labels: the words and the inks');
      for (const [payload, message] of [
        [{ words: ['red'], inks: ['teal'] }, /not a colour name.*\{label, colour\}/],
        [
          { words: ['red'], inks: [{ label: 'x', colour: 'nope' }] },
          /inks\[0\]\.colour "nope" is not a colour/,
        ],
        [{ words: Array(9).fill('red'), inks: Array(8).fill('red') }, /72 pairs; the limit is 64/],
        [{ words: ['red'], inks: ['red'], labels: [] }, /labels must have at least 1 item/],
        // Names of Object.prototype are no colour names (a lookup by name answered 500 for these).
        [{ words: ['red'], inks: ['__proto__'] }, /inks\[0\] "__proto__" is not a colour name/],
        [{ words: ['red'], inks: ['constructor'] }, /inks\[0\] "constructor" is not a colour name/],
        [{ words: [], inks: ['red'] }, /words must have at least 1 item/],
        [{ words: ['\u200b'], inks: ['red'] }, /no visible characters/],
      ] as const) {
        const r = await app.inject({ method: 'POST', url: '/v1/typographic/stroop', payload });
        t.equal(r.statusCode, 400, r.body);
        t.match(r.json().message, message);
      }
    });

    t.test('GET /v1/raster draws in the ink', async (t) => {
      const response = await app.inject({ method: 'GET', url: '/v1/raster?text=red&ink=%230000ff' });
      t.equal(response.statusCode, 200);
      const { data } = await sharp(response.rawPayload).raw().toBuffer({ resolveWithObject: true });
      let ink = 0;
      let unequal = 0;
      for (let p = 0; p < data.length; p += 3) {
        if (data[p] !== data[p + 1] || data[p + 2] !== 255) unequal++;
        if (data[p] === 0 && data[p + 2] === 255) ink++;
      }
      t.equal(unequal, 0, 'blue ink on white: red = green and blue = 255 everywhere');
      t.ok(ink > 20, `${ink} pixels of pure ink`);
      const black = await app.inject({ method: 'GET', url: '/v1/raster?text=red' });
      const named = await app.inject({ method: 'GET', url: '/v1/raster?text=red&ink=black' });
      t.same(named.rawPayload, black.rawPayload, 'the default ink is black');
      const bad = await app.inject({ method: 'GET', url: '/v1/raster?text=red&ink=rgb(1,2,3)' });
      t.equal(bad.statusCode, 400);
      t.match(bad.json().message, /ink "rgb\(1,2,3\)" is not a colour: a colour is #rrggbb, #rgb or one of/);
      // Names of Object.prototype are not colours (a lookup by name once answered 500 for these).
      for (const name of ['__proto__', 'constructor', 'toString']) {
        const inherited = await app.inject({ method: 'GET', url: `/v1/raster?text=red&ink=${name}` });
        t.equal(inherited.statusCode, 400, name);
      }
    });

    t.test('the article’s protocol on held-out shapes: the lexical ablation defends', async (t) => {
      const { shapes, tasks, cleanup } = await heldoutShapes(8, 12);
      t.teardown(cleanup);
      const colour = tasks.find((task) => task.name === 'colour')!;
      const result = await measureTask(app, colour, shapes);
      t.comment(JSON.stringify(result));
      // Measured (2026-12-06, 96 shapes of seed 8 at --per 12, 328 lexical neurons): attack 61.5%,
      // defended 12.6%; clean accuracy 99.0%, defended 93.8%.
      t.equal(result.images, 96);
      t.ok(result.attack.rate! >= 0.45, `the attack works: ${result.attack.rate}`);
      t.ok(
        result.attack.rate! - result.defended.rate! >= 0.3,
        `the ablation lowers the attack rate by ≥ 30 points: ${result.attack.rate} → ${result.defended.rate}`,
      );
      t.ok(result.defended.rate! <= 0.25, `defended rate ${result.defended.rate}`);
      t.ok(result.attack.cleanAccuracy! >= 0.95, `clean accuracy ${result.attack.cleanAccuracy}`);
      t.ok(
        result.attack.cleanAccuracy! - result.defended.cleanAccuracy! <= 0.12,
        `clean accuracy kept within 12 points: ${result.attack.cleanAccuracy} → ${result.defended.cleanAccuracy}`,
      );
      t.ok(
        result.meanLexicalShareOfAbsolute! > 0.5,
        `lexical neurons carry most of the winning logit's change (${result.meanLexicalShareOfAbsolute})`,
      );
    });
  },
);
