/**
 * Image (#/image, or #/image/{collection}/{imageId}[/{neuron}] for an image of a collection): the
 * neuron map over the image, a chosen neuron's heatmap laid over it (image-map.ts). For an uploaded
 * image and a text: each neuron's contribution x_i·a_i to their zero-shot logit, in logit units,
 * and the terms that make up the exact logit (POST /v1/attribution/image): the
 * bilinear part before and after normalisation, the head's bias and positional terms, the rest;
 * zero-shot labels (POST /v1/classify); and the map of a neuron over it (POST /v1/neurons/{id}/heatmap),
 * first of the neuron that contributes most. The image travels as base64 in JSON, as the API contract
 * describes it.
 */
import { api, call } from '../api';
import { neuronBars, scaleOf, scoreBars } from '../charts';
import { action, field, fill, fmt, h } from '../dom';
import { Pictures } from '../pictures';
import { drawCollectionImage, drawUploadMap } from './image-map';
import type { View } from './view';

function readAsDataUrl(file: File): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () =>
      reject(new Error(`could not read ${file.name}: ${reader.error?.message ?? 'error'}`));
    reader.readAsDataURL(file);
  });
}

export const imageView: View = (root, argument) => {
  const pictures = new Pictures();
  const file = h('input', { name: 'image', type: 'file', accept: 'image/*' });
  const text = h('input', { name: 'text', type: 'text', value: 'a red circle', autocomplete: 'off' });
  const labels = h('input', {
    name: 'labels',
    type: 'text',
    value: 'red, green, blue, yellow, purple',
    autocomplete: 'off',
  });
  const template = h('input', { name: 'template', type: 'text', value: 'a {} shape', autocomplete: 'off' });
  const preview = h('img', { class: 'preview', alt: 'the chosen image', hidden: true });
  const out = h('div', { class: 'compare', id: 'image-results' });
  /** Analyses so far: the key of an upload's heatmaps. */
  let uploads = 0;
  let previewUrl: string | undefined;

  file.addEventListener('change', () => {
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    const chosen = file.files?.[0];
    previewUrl = chosen ? URL.createObjectURL(chosen) : undefined;
    preview.hidden = previewUrl === undefined;
    if (previewUrl) preview.src = previewUrl;
  });

  const form = h(
    'form',
    { class: 'controls' },
    field('Image', file),
    field('Text', text),
    field('Labels', labels, 'comma-separated'),
    field('Template', template),
    h('button', { type: 'submit' }, 'Analyse'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void action(form, async () => {
      const chosen = file.files?.[0];
      // Without a file the request still goes out: the API says what is missing.
      const image = chosen ? await readAsDataUrl(chosen) : '';
      const names = labels.value
        .split(',')
        .map((label) => label.trim())
        .filter((label) => label !== '');
      const uploadMap = h('section', { class: 'card', id: 'upload-map' });
      const [contributions, classes] = await Promise.all([
        call(api.POST('/v1/attribution/image', { body: { image, text: text.value, topK: 8 } })),
        call(api.POST('/v1/classify', { body: { image, labels: names, template: template.value } })),
      ]);
      // Bars in logit units: x_i·a_i · logit_scale / |image embedding|, which sum to the bilinear logit.
      const inLogits = (rows: typeof contributions.top) => rows.map((row) => ({ ...row, value: row.logit }));
      const top = inLogits(contributions.top);
      const bottom = inLogits(contributions.bottom);
      const scale = scaleOf([...top, ...bottom].map((item) => item.value));
      const term = (name: string, value: string, note: string, id?: string) => [
        h('dt', null, name),
        h('dd', id ? { id } : null, value, ' ', h('small', null, note)),
      ];
      fill(
        out,
        h(
          'section',
          { class: 'card', id: 'contributions' },
          h('h3', null, `Contributions to “${contributions.text}”`),
          h(
            'dl',
            { class: 'facts', id: 'logit-terms' },
            ...term(
              'Σ x·a',
              fmt(contributions.sum, 4),
              'sum of the contributions x_i·a_i (a = W·t/|t|): the bilinear part before normalisation',
            ),
            ...term(
              'bilinear logit',
              fmt(contributions.bilinearLogit, 4),
              `= Σ x·a × logit scale ${fmt(contributions.logitScale, 4)} ÷ |image embedding| ${fmt(contributions.imageNorm, 4)}: the bilinear part after normalisation`,
            ),
            ...term(
              '+ bias and positions',
              fmt(contributions.biasLogit, 4),
              'the attention-pool head’s biases and positional embedding, in the same units',
            ),
            ...term(
              '+ rest',
              fmt(contributions.residual, 4),
              'what depends on the image beyond the bilinear part (the head’s attention weights; 0 when attention is uniform)',
            ),
            ...term(
              '= logit (exact)',
              fmt(contributions.logit, 4),
              'logit scale × cos(image, text), what the model says',
              'logit',
            ),
          ),
          h(
            'p',
            { class: 'lead' },
            'Bars: each neuron’s contribution in logit units (x_i·a_i × logit scale ÷ |image embedding|).',
          ),
          h('h4', null, 'Most positive'),
          neuronBars(top, scale),
          h('h4', null, 'Most negative'),
          neuronBars(bottom, scale),
        ),
        h(
          'section',
          { class: 'card', id: 'classes' },
          h('h3', null, 'Zero-shot labels'),
          scoreBars(
            classes.probabilities.map((item) => ({ name: item.label, value: item.p })),
            1,
          ),
        ),
        uploadMap,
      );
      const upload = { key: String(++uploads), image, name: chosen?.name ?? 'the image' };
      const suggested = contributions.top.slice(0, 6);
      await drawUploadMap(uploadMap, upload, suggested, pictures);
    });
  });

  const [collection, imageId, neuron] = (argument ?? '').split('/');
  const mapped = h('section', { class: 'card', id: 'collection-image', hidden: true });
  if (collection && /^\d+$/.test(imageId ?? '')) {
    mapped.hidden = false;
    const chosen = /^\d+$/.test(neuron ?? '') ? Number(neuron) : undefined;
    void action(mapped, () => drawCollectionImage(mapped, collection, Number(imageId), chosen, pictures));
  }

  root.append(
    h('h2', null, 'Image'),
    mapped,
    h(
      'p',
      { class: 'lead' },
      'Which neurons make an image match a text: the logit is a sum of per-neuron contributions, plus the head’s bias and positional terms.',
    ),
    h('div', { class: 'image-layout' }, form, preview),
    out,
  );
  return () => {
    pictures.dispose();
    if (previewUrl) URL.revokeObjectURL(previewUrl);
  };
};
