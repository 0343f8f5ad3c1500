/**
 * Attack (#/attack, or #/attack/{collection}/{imageId}): the typographic attack on one image
 * (POST /v1/typographic/attack). An uploaded image, or one of a collection, gets a word written on
 * the model's input; the view shows the attacked input, the zero-shot probabilities before and
 * after, the neurons whose contribution to the winning logit changed most (and the share of that
 * change carried by lexical neurons), and, with the defence, the same with the lexical neurons
 * ablated at the neuron layer.
 */
import { api, call, type Ok } from '../api';
import { neuronBars, scoreBars } from '../charts';
import { action, field, fill, fmt, h } from '../dom';
import { Pictures } from '../pictures';
import type { View } from './view';

type Attack = Ok<'/v1/typographic/attack', 'post'>;
type Row = Attack['images'][number];
type Prediction = Row['before'];

const UPLOAD = '';

function readAsDataUrl(file: File): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () =>
      reject(new Error(`could not read ${file.name}: ${reader.error?.message ?? 'error'}`));
    reader.readAsDataURL(file);
  });
}

const list = (value: string, separator: string) =>
  value
    .split(separator)
    .map((item) => item.trim())
    .filter((item) => item !== '');

const percent = (value: number | null | undefined) => (value == null ? '–' : `${fmt(100 * value, 3)}%`);

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

export const attackView: View = (root, argument) => {
  const pictures = new Pictures();
  const [wantedCollection, wantedImage] = (argument ?? '').split('/');
  const source = h('select', { name: 'source' }, h('option', { value: UPLOAD }, 'an upload'));
  const file = h('input', { name: 'image', type: 'file', accept: 'image/*' });
  const imageId = h('input', { name: 'imageId', type: 'number', min: 0, value: wantedImage || 0 });
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
  const size = h('input', { name: 'size', type: 'number', min: 0.02, max: 1, step: 0.01, value: 0.25 });
  const box = h('input', { name: 'box', type: 'checkbox', checked: true });
  const defend = h('input', { name: 'defend', type: 'checkbox', checked: true });
  const preview = h('img', { class: 'preview', alt: 'the chosen image', hidden: true });
  const out = h('div', { id: 'attack-results' });
  let previewUrl: string | undefined;

  const uploadField = field('Image', file);
  const imageField = field('Image id', imageId, 'an indexed image of the collection');
  const showSource = () => {
    const fromCollection = source.value !== UPLOAD;
    uploadField.hidden = fromCollection;
    imageField.hidden = !fromCollection;
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = undefined;
    preview.hidden = true;
    if (fromCollection && /^\d+$/.test(imageId.value)) {
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
  source.addEventListener('change', showSource);
  imageId.addEventListener('change', showSource);
  file.addEventListener('change', showSource);

  const form = h(
    'form',
    { class: 'controls', id: 'attack-form' },
    field('Image from', source),
    uploadField,
    imageField,
    field('Word written', text),
    field('Labels', labels, 'comma-separated; the word must be one of them'),
    field('Templates', templates, 'semicolon-separated; {} is the label'),
    field('Size', size, 'font size, a fraction of the model’s input side'),
    h('label', { class: 'field check' }, box, h('span', null, 'on a white box')),
    h('label', { class: 'field check' }, defend, h('span', null, 'defend: ablate the lexical neurons')),
    h('button', { type: 'submit' }, 'Attack'),
  );

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void action(form, async () => {
      const fromCollection = source.value !== UPLOAD;
      const chosen = file.files?.[0];
      // Without a file the request still goes out: the API says what is missing.
      const images = fromCollection
        ? { collection: source.value, imageIds: [Number(imageId.value)] }
        : { image: chosen ? await readAsDataUrl(chosen) : '' };
      if (fromCollection) {
        window.history.replaceState(null, '', `#/attack/${source.value}/${Number(imageId.value)}`);
      }
      const names = list(labels.value, ',');
      const result = await call(
        api.POST('/v1/typographic/attack', {
          body: {
            ...images,
            text: text.value,
            labels: names,
            templates: list(templates.value, ';'),
            size: Number(size.value) || 0.25,
            ...(box.checked ? { box: 'white' } : {}),
            ...(defend.checked ? { ablate: 'lexical' as const } : {}),
            explain: 8,
            returnImages: true,
          },
        }),
      );
      // One image is answered at once; only attacks of more than 32 images are jobs.
      if ('jobId' in result) throw new Error(`the attack became job ${result.jobId}`);
      draw(result, fromCollection ? `${source.value}/${imageId.value}` : 'upload');
    });
  });

  /** Draws an attack's answer; `from` names its image (`upload`, or `{collection}/{imageId}`). */
  function draw(result: Attack, from: string): void {
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
          h('small', null, `${percent(row.changedShare)} of the input’s pixels changed`),
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
        `With the defence: ${result.defence.ablated} lexical neurons ablated`,
        result.labels,
        row.defended.before,
        row.defended.after,
      );
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

  root.append(
    h('h2', null, 'Typographic attack'),
    h(
      'p',
      { class: 'lead' },
      'Write a word on an image and see whether the model reads it: the probabilities before and after, ',
      'the neurons that carried the change, and the defence that ablates the lexical neurons.',
    ),
    h('div', { class: 'image-layout' }, form, preview),
    out,
  );

  // The collections to pick from (their images once indexed).
  void action(form, async () => {
    const { collections } = await call(api.GET('/v1/collections'));
    for (const collection of collections.filter((c) => c.images > 0)) {
      const option = h(
        'option',
        { value: collection.id },
        `${collection.name} (${collection.images} images)`,
      );
      option.selected = collection.id === wantedCollection;
      source.append(option);
    }
    showSource();
  });
  showSource();
  return () => {
    pictures.dispose();
    if (previewUrl) URL.revokeObjectURL(previewUrl);
  };
};
