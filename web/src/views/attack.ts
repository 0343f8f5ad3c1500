/**
 * Attack (#/attack, #/attack/{collection}/{imageId} or #/attack/{collection}/sample): the
 * typographic attack (POST /v1/typographic/attack). The text's font, size, centre, ink and
 * background box, the labels and templates, and the defence (none, the lexical neurons, or a list
 * of neuron ids ablated at the neuron layer) are the API's own fields; the fonts and named colours
 * come from GET /v1/typographic/options.
 *
 * On one image (uploaded, or one of a collection) the view shows the attacked input, the zero-shot
 * probabilities before and after, the neurons whose contribution to the winning logit changed most
 * (and the share of that change carried by lexical neurons), and the same with the defence. On a
 * seeded sample of a collection (optionally of some categories) it shows the summary (attack
 * success among eligible images with its 95% interval, clean and attacked accuracy, without and
 * with the defence) and a row per image with its thumbnail; a sample of more images than one
 * request answers is a job, followed over Server-Sent Events (polled with an API key) with its
 * progress and a cancel button.
 */
import { api, apiKey, call, jobEventsUrl, type AnyJob, type Ok, type paths } from '../api';
import { neuronBars, scoreBars } from '../charts';
import { action, clearError, field, fill, fmt, h, showError } from '../dom';
import { Pictures, type Collection } from '../pictures';
import type { View } from './view';

type Attack = Ok<'/v1/typographic/attack', 'post'>;
type Result = Extract<Attack, { summary: unknown }>;
type Row = Result['images'][number];
type Prediction = Row['before'];
type Proportion = Result['summary']['attack'];
type Options = Ok<'/v1/typographic/options', 'get'>;
type AttackBody = NonNullable<
  paths['/v1/typographic/attack']['post']['requestBody']
>['content']['application/json'];
type Measures = Pick<Result['summary'], 'attack' | 'cleanAccuracy' | 'attackedAccuracy'>;

const UPLOAD = '';
/** Rows of a sample's table (each with a thumbnail); the rest are in the API's answer. */
const MAX_ROWS = 100;
const ENDINGS = ['completed', 'failed', 'cancelled', 'lost'] as const;

function readAsDataUrl(file: File): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () =>
      reject(new Error(`could not read ${file.name}: ${reader.error?.message ?? 'error'}`));
    reader.readAsDataURL(file);
  });
}

const list = (value: string, separator: string | RegExp) =>
  value
    .split(separator)
    .map((item) => item.trim())
    .filter((item) => item !== '');

const percent = (value: number | null | undefined) => (value == null ? '–' : `${fmt(100 * value, 3)}%`);

/** A proportion for people: the rate, its Wilson 95% interval and the counts. */
function proportion(p: Proportion | undefined): string {
  if (!p) return '–';
  if (p.n === 0) return 'no images';
  return `${percent(p.rate)} [${percent(p.low)}, ${percent(p.high)}] · ${p.successes} of ${p.n}`;
}

/** The neuron ids of the defence's list: whole numbers separated by commas or spaces. */
function neuronIds(value: string, neuronCount: number | undefined): number[] {
  const range = neuronCount ? ` from 0 to ${neuronCount - 1}` : '';
  const tokens = list(value, /[\s,]+/);
  if (tokens.length === 0) throw new Error(`list the neurons to ablate: whole numbers${range}`);
  const bad = tokens.find((token) => !/^\d+$/.test(token));
  if (bad !== undefined)
    throw new Error(`“${bad.slice(0, 20)}” is not a neuron id: give whole numbers${range}`);
  return tokens.map(Number);
}

/** Probabilities before and after, side by side, the predicted label marked. */
function predictions(id: string, title: string, labels: string[], before: Prediction, after: Prediction) {
  const column = (name: string, prediction: Prediction) =>
    h(
      'div',
      { 'data-side': name, 'data-predicted': prediction.predicted },
      h('h4', null, `${name}: `, h('b', { class: 'predicted' }, prediction.predicted)),
      scoreBars(
        labels.map((label, j) => ({ name: label, value: prediction.probabilities[j] })),
        1,
      ),
    );
  return h(
    'section',
    { class: 'card', id },
    h('h3', null, title),
    h('div', { class: 'compare' }, column('before', before), column('after', after)),
  );
}

function verdict(row: { eligible: boolean; success: boolean }, target: string): string {
  if (!row.eligible) return `not eligible: the clean image is already “${target}”`;
  return row.success ? `the attack succeeds: “${target}”` : 'the attack fails';
}

/** What the defence ablated, in words. */
function defenceName(defence: NonNullable<Result['defence']>): string {
  return defence.lexical
    ? `the ${defence.ablated} lexical neurons ablated`
    : `${defence.ablated} listed neuron${defence.ablated === 1 ? '' : 's'} ablated`;
}

export const attackView: View = (root, argument) => {
  const pictures = new Pictures();
  const [wantedCollection, wantedImage] = (argument ?? '').split('/');
  let options: Options | undefined;
  let collections: Collection[] = [];
  /** Stops following the running job (its event stream or its polling). */
  let unfollow: (() => void) | undefined;
  let jobId: string | undefined;

  const source = h('select', { name: 'source' }, h('option', { value: UPLOAD }, 'an upload'));
  const pick = h(
    'select',
    { name: 'pick' },
    h('option', { value: 'image' }, 'one image'),
    h('option', { value: 'sample' }, 'a sample'),
  );
  pick.value = wantedImage === 'sample' ? 'sample' : 'image';
  const file = h('input', { name: 'image', type: 'file', accept: 'image/*' });
  const imageId = h('input', {
    name: 'imageId',
    type: 'number',
    min: 0,
    value: /^\d+$/.test(wantedImage ?? '') ? wantedImage : 0,
  });
  const count = h('input', { name: 'count', type: 'number', min: 1, value: 64 });
  const seed = h('input', { name: 'seed', type: 'number', min: 0, value: 0 });
  const categories = h('select', { name: 'categories', multiple: true, size: 4 });
  const text = h('input', { name: 'text', type: 'text', value: 'green', autocomplete: 'off' });
  const labels = h('input', {
    name: 'labels',
    type: 'text',
    value: 'red, orange, yellow, green, blue, purple, pink',
    autocomplete: 'off',
  });
  const templates = h('input', {
    name: 'templates',
    type: 'text',
    value: '{}; the colour {}; a {} patch',
    autocomplete: 'off',
  });
  // The fonts and named colours are the API's (GET /v1/typographic/options), filled in on load.
  const font = h('select', { name: 'font' });
  const colourList = h('datalist', { id: 'attack-colours' });
  const size = h('input', { name: 'size', type: 'number', min: 0.02, max: 1, step: 0.01, value: 0.25 });
  const x = h('input', { name: 'x', type: 'number', min: 0, max: 1, step: 0.05, value: 0.5 });
  const y = h('input', { name: 'y', type: 'number', min: 0, max: 1, step: 0.05, value: 0.5 });
  const colour = h('input', {
    name: 'colour',
    type: 'text',
    value: 'black',
    list: 'attack-colours',
    autocomplete: 'off',
  });
  const box = h('input', { name: 'box', type: 'checkbox', checked: true });
  const boxColour = h('input', {
    name: 'boxColour',
    type: 'text',
    value: 'white',
    list: 'attack-colours',
    autocomplete: 'off',
    'aria-label': 'box colour',
  });
  const defence = h(
    'select',
    { name: 'defence' },
    h('option', { value: 'lexical' }, 'ablate the lexical neurons'),
    h('option', { value: 'neurons' }, 'ablate these neurons'),
    h('option', { value: 'none' }, 'no defence'),
  );
  const neurons = h('input', { name: 'neurons', type: 'text', value: '', autocomplete: 'off' });
  const preview = h('img', { class: 'preview', alt: 'the chosen image', hidden: true });
  const status = h('div', { id: 'attack-job', class: 'search-status', 'aria-live': 'polite', hidden: true });
  const out = h('div', { id: 'attack-results' });
  const submit = h('button', { type: 'submit' }, 'Attack');
  const cancel = h(
    'button',
    { type: 'button', class: 'secondary', hidden: true, id: 'attack-cancel' },
    'Cancel',
  );
  let previewUrl: string | undefined;

  const uploadField = field('Image', file);
  const pickField = field('Attack', pick);
  const imageField = field('Image id', imageId, 'an indexed image of the collection');
  const countField = field('Images', count, 'drawn without replacement');
  const seedField = field('Seed', seed, 'the same seed draws the same images');
  const categoriesField = field(
    'Categories',
    categories,
    'none chosen: all; a category among the labels is the true label',
  );
  const neuronsField = field('Neuron ids', neurons, 'comma- or space-separated');
  const boxField = field('Box colour', boxColour);

  const chosenCollection = () => collections.find((c) => c.id === source.value);
  const showSource = () => {
    const fromCollection = source.value !== UPLOAD;
    const sample = fromCollection && pick.value === 'sample';
    uploadField.hidden = fromCollection;
    pickField.hidden = !fromCollection;
    imageField.hidden = !fromCollection || sample;
    for (const shown of [countField, seedField, categoriesField]) shown.hidden = !sample;
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = undefined;
    preview.hidden = true;
    if (fromCollection && !sample && /^\d+$/.test(imageId.value)) {
      const id = Number(imageId.value);
      void pictures
        .load(`thumb:${source.value}:${id}`, () =>
          api.GET('/v1/collections/{id}/images/{imageId}/thumbnail', {
            params: { path: { id: source.value, imageId: String(id) } },
            parseAs: 'blob',
          }),
        )
        .then(({ url }) => {
          preview.src = url;
          preview.hidden = false;
        })
        .catch((error: unknown) => pictures.fail(error));
    } else if (!fromCollection && file.files?.[0]) {
      previewUrl = URL.createObjectURL(file.files[0]);
      preview.src = previewUrl;
      preview.hidden = false;
    }
  };
  /** The chosen collection's categories to draw among, and its image count as the sample's most. */
  const showCollection = () => {
    const collection = chosenCollection();
    categories.replaceChildren(
      ...(collection?.categories ?? []).map((category) =>
        h('option', { value: category.name }, `${category.name} (${category.count})`),
      ),
    );
    if (collection) {
      const most = Math.min(collection.images, options?.limits.imagesPerJob ?? collection.images);
      count.max = String(most);
      if (Number(count.value) > most) count.value = String(most);
    }
    showSource();
  };
  const showDefence = () => {
    neuronsField.hidden = defence.value !== 'neurons';
  };
  source.addEventListener('change', showCollection);
  pick.addEventListener('change', showSource);
  imageId.addEventListener('change', showSource);
  file.addEventListener('change', showSource);
  defence.addEventListener('change', showDefence);
  box.addEventListener('change', () => {
    boxColour.disabled = !box.checked;
  });

  const form = h(
    'form',
    { class: 'controls', id: 'attack-form' },
    field('Image from', source),
    uploadField,
    pickField,
    imageField,
    countField,
    seedField,
    categoriesField,
    field('Text written', text),
    field('Labels', labels, 'comma-separated; the text must be one of them'),
    field('Templates', templates, 'semicolon-separated; {} is the label'),
    field('Font', font),
    field('Size', size, 'font size, a fraction of the model’s input side'),
    field('Centre x', x, 'from the left, a fraction of the side'),
    field('Centre y', y, 'from the top'),
    field('Ink', colour, 'a colour name, #rrggbb or #rgb'),
    h('label', { class: 'field check' }, box, h('span', null, 'on a box')),
    boxField,
    field('Defence', defence),
    neuronsField,
    submit,
    cancel,
    colourList,
  );

  /** The request's fields for the text, the classes and the defence. */
  function settings() {
    const ablate =
      defence.value === 'lexical'
        ? { ablate: 'lexical' as const }
        : defence.value === 'neurons'
          ? { ablate: neuronIds(neurons.value, options?.neuronCount) }
          : {};
    return {
      text: text.value,
      labels: list(labels.value, ','),
      templates: list(templates.value, ';'),
      // One of the API's fonts (the select lists GET /v1/typographic/options's).
      font: (font.value || undefined) as AttackBody['font'],
      size: Number(size.value) || 0.25,
      x: x.value === '' ? undefined : Number(x.value),
      y: y.value === '' ? undefined : Number(y.value),
      colour: colour.value.trim() || undefined,
      ...(box.checked ? { box: boxColour.value.trim() || 'white' } : {}),
      ...ablate,
    };
  }

  const stopFollowing = () => {
    unfollow?.();
    unfollow = undefined;
  };

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    stopFollowing();
    void action(form, async () => {
      const fromCollection = source.value !== UPLOAD;
      const sample = fromCollection && pick.value === 'sample';
      const body = settings();
      if (sample) {
        const chosen = [...categories.selectedOptions].map((option) => option.value);
        const sampleBody = {
          collection: source.value,
          sample: {
            count: Number(count.value),
            seed: Number(seed.value),
            ...(chosen.length > 0 ? { categories: chosen } : {}),
          },
        };
        window.history.replaceState(null, '', `#/attack/${source.value}/sample`);
        fill(out);
        status.hidden = true;
        const answer = await call(
          api.POST('/v1/typographic/attack', { body: { ...sampleBody, ...body, explain: 0 } }),
        );
        if ('jobId' in answer) follow(answer.jobId, answer.images, source.value);
        else drawSample(answer, source.value);
        return;
      }
      const chosen = file.files?.[0];
      // Without a file the request still goes out: the API says what is missing.
      const images = fromCollection
        ? { collection: source.value, imageIds: [Number(imageId.value)] }
        : { image: chosen ? await readAsDataUrl(chosen) : '' };
      if (fromCollection) {
        window.history.replaceState(null, '', `#/attack/${source.value}/${Number(imageId.value)}`);
      }
      const result = await call(
        api.POST('/v1/typographic/attack', {
          body: { ...images, ...body, explain: 8, returnImages: true },
        }),
      );
      // One image is answered at once; only attacks of more than 32 images are jobs.
      if ('jobId' in result) throw new Error(`the attack became job ${result.jobId}`);
      status.hidden = true;
      draw(result, fromCollection ? `${source.value}/${imageId.value}` : 'upload');
    });
  });

  cancel.addEventListener('click', () => {
    if (jobId === undefined) return;
    cancel.disabled = true;
    clearError();
    call(api.DELETE('/v1/jobs/{id}', { params: { path: { id: jobId } } })).catch((error: unknown) => {
      cancel.disabled = false;
      showError(error);
    });
  });

  /** Follows a sample's job to its end (Server-Sent Events, or polling with an API key). */
  function follow(id: string, total: number, collection: string): void {
    jobId = id;
    status.hidden = false;
    status.dataset.job = id;
    cancel.hidden = false;
    cancel.disabled = false;
    const progress = (state: string, done: number, of: number) => {
      status.dataset.state = state;
      fill(
        status,
        h('progress', { max: of || 1, value: done, 'aria-label': 'attack progress' }),
        h('p', { class: 'muted' }, `Job ${id} ${state}: ${done} of ${of} images attacked`),
      );
    };
    const ended = (job: Partial<AnyJob> & { error?: string | null }, state: string) => {
      stopFollowing();
      cancel.hidden = true;
      const done = job.progress && 'done' in job.progress ? job.progress.done : 0;
      progress(state, done, total);
      if (state === 'completed' && job.result) drawSample(job.result as Result, collection);
      else if (state === 'failed' || state === 'lost') {
        showError(
          new Error(
            `the attack ${state === 'lost' ? 'was lost' : 'failed'}: ${job.error ?? 'unknown error'}`,
          ),
        );
      }
    };
    progress('queued', 0, total);
    const poll = () => {
      let timer = 0;
      let active = true;
      unfollow = () => {
        active = false;
        window.clearTimeout(timer);
      };
      const tick = () => {
        call(api.GET('/v1/jobs/{id}', { params: { path: { id } } }))
          .then((job) => {
            if (!active) return;
            if ((ENDINGS as readonly string[]).includes(job.state)) return ended(job, job.state);
            if ('done' in job.progress) progress(job.state, job.progress.done, job.progress.total);
            timer = window.setTimeout(tick, 400);
          })
          .catch((error: unknown) => {
            if (!active) return;
            stopFollowing();
            cancel.hidden = true;
            showError(error);
          });
      };
      tick();
    };
    if (apiKey()) return poll();
    const events = new EventSource(jobEventsUrl(id));
    let active = true;
    unfollow = () => {
      active = false;
      events.close();
    };
    events.addEventListener('progress', (message) => {
      const view = JSON.parse((message as MessageEvent<string>).data) as {
        state: string;
        done: number;
        total: number;
      };
      progress(view.state, view.done, view.total);
    });
    for (const end of ENDINGS) {
      events.addEventListener(end, (message) =>
        ended(JSON.parse((message as MessageEvent<string>).data) as Partial<AnyJob>, end),
      );
    }
    events.addEventListener('error', () => {
      // The stream broke before a final event: read the job instead.
      if (!active) return;
      active = false;
      events.close();
      poll();
    });
  }

  /** Draws an attack's answer on one image; `from` names it (`upload`, or `{collection}/{imageId}`). */
  function draw(result: Result, from: string): void {
    const [row] = result.images;
    const explanation = row.explanation;
    const cards: HTMLElement[] = [
      h(
        'section',
        { class: 'card', id: 'attacked', 'data-from': from },
        h('h3', null, `“${result.text}” written on the input`),
        h('img', {
          class: 'attacked',
          alt: `the model's input with “${result.text}” written on it`,
          src: `data:image/png;base64,${row.attackedPng ?? ''}`,
        }),
        h(
          'p',
          {
            class: `verdict ${row.success ? 'yes' : 'no'}`,
            'data-success': String(row.success),
            'data-eligible': String(row.eligible),
          },
          verdict(row, result.target),
        ),
        h(
          'p',
          null,
          h('small', { class: 'changed' }, `${percent(row.changedShare)} of the input’s pixels changed`),
          row.trueLabel ? h('small', null, ` · true label “${row.trueLabel}”`) : null,
        ),
      ),
      predictions('attack-probabilities', 'Zero-shot probabilities', result.labels, row.before, row.after),
    ];
    if (explanation) {
      cards.push(
        h(
          'section',
          { class: 'card', id: 'attack-neurons' },
          h('h3', null, `Neurons behind “${explanation.label}”`),
          h(
            'p',
            { class: 'lead' },
            `Its logit goes from ${fmt(explanation.logitBefore)} to ${fmt(explanation.logitAfter)}. `,
            'Bars: the change of each neuron’s contribution x_i·a_i, in logit units; lexical neurons are marked. ',
            `Lexical neurons carry ${percent(explanation.lexicalShareOfAbsolute)} of the absolute change`,
            ` (${percent(explanation.lexicalShare)} of the net change).`,
          ),
          neuronBars(
            explanation.neurons.map((neuron) => ({
              neuron: neuron.neuron,
              value: neuron.change,
              label: `${neuron.label ?? 'unlabelled'}${neuron.lexical ? ' · lexical' : ''}`,
            })),
          ),
        ),
      );
    }
    if (row.defended && result.defence) {
      const card = predictions(
        'attack-defence',
        `With the defence: ${defenceName(result.defence)}`,
        result.labels,
        row.defended.before,
        row.defended.after,
      );
      card.dataset.ablated = String(result.defence.ablated);
      card.append(
        h(
          'p',
          {
            class: `verdict ${row.defended.success ? 'yes' : 'no'}`,
            'data-success': String(row.defended.success),
            'data-eligible': String(row.defended.eligible),
          },
          verdict(row.defended, result.target),
        ),
      );
      cards.push(card);
    }
    fill(out, h('div', { class: 'compare' }, ...cards));
  }

  /** Draws an attack on a sample: the summary without and with the defence, and a row per image. */
  function drawSample(result: Result, collection: string): void {
    const { summary, defence } = result;
    const measures: [string, string, (m: Measures) => Proportion | undefined][] = [
      ['attack', 'attack success (of the eligible images)', (m) => m.attack],
      ['cleanAccuracy', 'clean accuracy', (m) => m.cleanAccuracy],
      ['attackedAccuracy', 'accuracy with the text', (m) => m.attackedAccuracy],
    ];
    const cell = (m: Proportion | undefined, name: string, side: string) =>
      h(
        'td',
        {
          'data-measure': name,
          'data-side': side,
          'data-successes': m?.successes ?? null,
          'data-n': m?.n ?? null,
        },
        proportion(m),
      );
    const summaryCard = h(
      'section',
      { class: 'card', id: 'attack-summary', 'data-images': result.images.length },
      h('h3', null, `“${result.text}” written on ${result.images.length} images of ${collection}`),
      h(
        'p',
        { class: 'lead' },
        `Target “${result.target}”; ${percent(summary.meanChangedShare)} of the pixels changed on average; `,
        `${summary.ineligible} image${summary.ineligible === 1 ? ' was' : 's were'} not eligible (already “${result.target}”). `,
        'Rates with their 95% (Wilson) interval; accuracies over the images whose category is a label.',
      ),
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { class: 'collections attack-summary' },
          h(
            'thead',
            null,
            h(
              'tr',
              null,
              h('th', { scope: 'col' }, ''),
              h('th', { scope: 'col' }, 'without defence'),
              defence ? h('th', { scope: 'col' }, `with ${defenceName(defence)}`) : null,
            ),
          ),
          h(
            'tbody',
            null,
            ...measures.map(([name, words, of]) =>
              h(
                'tr',
                null,
                h('th', { scope: 'row' }, words),
                cell(of(summary), name, 'plain'),
                defence ? cell(of(defence), name, 'defended') : null,
              ),
            ),
          ),
        ),
      ),
    );
    const shown = result.images.slice(0, MAX_ROWS);
    const predicted = (p: Prediction, labels: string[]) =>
      `${p.predicted} ${percent(p.probabilities[labels.indexOf(p.predicted)])}`;
    const rows = shown.map((row) =>
      h(
        'tr',
        {
          'data-image-id': row.imageId ?? null,
          'data-before': row.before.predicted,
          'data-after': row.after.predicted,
          'data-success': String(row.success),
          'data-defended-success': row.defended ? String(row.defended.success) : null,
        },
        h(
          'td',
          null,
          row.imageId !== undefined
            ? pictures.thumbnail(collection, row.imageId, `image ${row.imageId}`, 40)
            : null,
        ),
        h('td', { class: 'number' }, row.imageId ?? ''),
        h('td', null, row.category ?? '–'),
        h('td', null, predicted(row.before, result.labels)),
        h('td', null, predicted(row.after, result.labels)),
        h(
          'td',
          { class: row.success ? 'verdict yes' : 'verdict no' },
          row.eligible ? (row.success ? 'yes' : 'no') : 'n/a',
        ),
        defence && row.defended
          ? h(
              'td',
              null,
              `${predicted(row.defended.after, result.labels)} · ${row.defended.eligible ? (row.defended.success ? 'yes' : 'no') : 'n/a'}`,
            )
          : null,
      ),
    );
    const table = h(
      'section',
      { class: 'card', id: 'attack-rows' },
      h('h3', null, 'Per image'),
      shown.length < result.images.length
        ? h('p', { class: 'muted' }, `The first ${shown.length} of ${result.images.length} images.`)
        : null,
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { class: 'collections' },
          h(
            'thead',
            null,
            h(
              'tr',
              null,
              h('th', { scope: 'col' }, ''),
              h('th', { scope: 'col' }, 'id'),
              h('th', { scope: 'col' }, 'category'),
              h('th', { scope: 'col' }, 'before'),
              h('th', { scope: 'col' }, 'after'),
              h('th', { scope: 'col' }, 'success'),
              defence ? h('th', { scope: 'col' }, 'defended: after · success') : null,
            ),
          ),
          h('tbody', null, ...rows),
        ),
      ),
    );
    fill(out, summaryCard, table);
  }

  root.append(
    h('h2', null, 'Typographic attack'),
    h(
      'p',
      { class: 'lead' },
      'Write a text on an image, or on a sample of a collection, and see whether the model reads it: ',
      'the probabilities before and after, the neurons that carried the change, and a defence that ablates ',
      'neurons at the neuron layer.',
    ),
    h('div', { class: 'image-layout' }, form, preview),
    status,
    out,
  );

  // The API's fonts and colours, and the collections to pick from (their images once indexed).
  void action(form, async () => {
    const [given, listed] = await Promise.all([
      call(api.GET('/v1/typographic/options')),
      call(api.GET('/v1/collections')),
    ]);
    options = given;
    font.replaceChildren(...given.fonts.map((name) => h('option', { value: name }, name)));
    font.value = given.defaultFont;
    colourList.replaceChildren(...given.colours.map((c) => h('option', { value: c.name }, c.hex)));
    size.min = String(given.limits.minSize);
    size.max = String(given.limits.maxSize);
    neurons.placeholder = `e.g. 12, 40 (0 to ${given.neuronCount - 1})`;
    collections = listed.collections.filter((c) => c.images > 0);
    for (const collection of collections) {
      const option = h(
        'option',
        { value: collection.id },
        `${collection.name} (${collection.images} images)`,
      );
      option.selected = collection.id === wantedCollection;
      source.append(option);
    }
    showCollection();
  });
  showSource();
  showDefence();
  return () => {
    stopFollowing();
    pictures.dispose();
    if (previewUrl) URL.revokeObjectURL(previewUrl);
  };
};
