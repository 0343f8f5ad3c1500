/**
 * The neuron map over an image of a collection: the image (its thumbnail, GET …/thumbnail) beside a
 * chosen neuron's spatial map laid over the model's crop of it (GET …/images/{imageId}/heatmap, whose
 * x-neuron-max header gives the map's maximum). Neurons to try: the ones most selective for the
 * image's category (GET /v1/collections/{id}/categories/{category}/neurons). Below, the images of the
 * collection most like it (GET /v1/collections/{id}/search?image=, cosine of the image embeddings).
 */
import { api, call } from '../api';
import { action, field, fill, fmt, h } from '../dom';
import { imageTile, type Pictures } from '../pictures';

const SUGGESTED = 6;
const SIMILAR = 9;

export async function drawCollectionImage(
  section: HTMLElement,
  collection: string,
  imageId: number,
  wanted: number | undefined,
  pictures: Pictures,
): Promise<void> {
  fill(section, h('h3', null, 'Neuron map'), h('p', { class: 'muted' }, 'loading…'));
  const meta = await call(
    api.GET('/v1/collections/{id}/images/{imageId}', {
      params: { path: { id: collection, imageId: String(imageId) } },
    }),
  );
  const suggested = meta.category
    ? (
        await call(
          api.GET('/v1/collections/{id}/categories/{category}/neurons', {
            params: { path: { id: collection, category: meta.category }, query: { k: SUGGESTED } },
          }),
        )
      ).neurons.map((row) => row.neuron)
    : [];
  const what = `${meta.name}${meta.category ? ` (${meta.category})` : ''}`;
  const neuron = h('input', {
    name: 'map-neuron',
    type: 'number',
    min: 0,
    inputmode: 'numeric',
    value: wanted ?? suggested[0] ?? 0,
  });
  const form = h(
    'form',
    { class: 'controls', id: 'map-form' },
    field('Neuron', neuron),
    h('button', { type: 'submit' }, 'Show its map'),
  );
  const map = h('img', { id: 'heatmap', alt: '', width: 192, height: 192, class: 'map' });
  const mapCaption = h('figcaption', { id: 'heatmap-caption' });
  const similar = h('div', { class: 'tiles pictures', id: 'similar-images' });
  const show = async (id: number) => {
    neuron.value = String(id);
    window.history.replaceState(null, '', `#/image/${collection}/${imageId}/${id}`);
    const { url, max } = await pictures.heatmap(collection, imageId, id);
    map.src = url;
    map.alt = `neuron ${id}’s map over ${what}, red where it is active`;
    map.dataset.neuron = String(id);
    if (max !== undefined) map.dataset.max = String(max);
    fill(
      mapCaption,
      h('a', { href: `#/neuron/${id}/${collection}` }, `neuron ${id}`),
      max !== undefined ? ` · strongest cell ${fmt(max)}` : null,
    );
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void action(section, () => show(Number(neuron.value) || 0));
  });
  const chips = suggested.map((id) =>
    h(
      'button',
      {
        type: 'button',
        class: 'chip',
        'data-neuron': id,
        onclick: () => void action(section, () => show(id)),
      },
      `#${id}`,
    ),
  );
  fill(
    section,
    h('h3', null, 'Neuron map'),
    h(
      'p',
      { class: 'muted' },
      `${what}, image ${imageId} of `,
      h('a', { href: `#/collections/${collection}` }, collection),
      `, ${meta.width} × ${meta.height} px${meta.caption ? `: “${meta.caption}”` : ''}.`,
    ),
    form,
    chips.length
      ? h(
          'div',
          { class: 'chips', id: 'map-suggestions' },
          h('span', { class: 'muted' }, `Most selective for “${meta.category}”: `),
          ...chips,
        )
      : null,
    h(
      'div',
      { class: 'map-pair' },
      h(
        'figure',
        null,
        pictures.thumbnail(collection, imageId, what, 192),
        h('figcaption', null, 'the image'),
      ),
      h('figure', null, map, mapCaption),
    ),
    h('h4', null, 'Images most like it'),
    similar,
  );
  await Promise.all([
    show(Number(neuron.value) || 0),
    call(
      api.GET('/v1/collections/{id}/search', {
        params: { path: { id: collection }, query: { image: imageId, k: SIMILAR } },
      }),
    ).then((found) =>
      fill(
        similar,
        ...found.results
          .filter((result) => result.imageId !== imageId)
          .map((result) =>
            imageTile(pictures, collection, { ...result, value: result.score }, { valueName: 'cosine' }),
          ),
      ),
    ),
  ]);
}

/**
 * The neuron map over an uploaded image (POST /v1/neurons/{id}/heatmap with the image as base64):
 * the neurons to try are the ones that contribute most to the text's logit.
 */
export async function drawUploadMap(
  section: HTMLElement,
  upload: { key: string; image: string; name: string },
  suggested: readonly { neuron: number; label?: string }[],
  pictures: Pictures,
): Promise<void> {
  const neuron = h('input', {
    name: 'upload-neuron',
    type: 'number',
    min: 0,
    inputmode: 'numeric',
    value: suggested[0]?.neuron ?? 0,
  });
  const form = h(
    'form',
    { class: 'controls', id: 'upload-map-form' },
    field('Neuron', neuron),
    h('button', { type: 'submit' }, 'Show its map'),
  );
  const map = h('img', { id: 'upload-heatmap', alt: '', width: 192, height: 192, class: 'map' });
  const caption = h('figcaption', { id: 'upload-heatmap-caption' });
  const show = async (id: number) => {
    neuron.value = String(id);
    const { url, max } = await pictures.load(`upload:${upload.key}:${id}`, () =>
      api.POST('/v1/neurons/{id}/heatmap', {
        params: { path: { id: String(id) } },
        body: { image: upload.image },
        parseAs: 'blob',
      }),
    );
    map.src = url;
    map.alt = `neuron ${id}’s map over ${upload.name}, red where it is active`;
    map.dataset.neuron = String(id);
    if (max !== undefined) map.dataset.max = String(max);
    fill(
      caption,
      h('a', { href: `#/neuron/${id}` }, `neuron ${id}`),
      max !== undefined ? ` · strongest cell ${fmt(max)}` : null,
    );
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void action(section, () => show(Number(neuron.value) || 0));
  });
  const original = h('img', {
    src: upload.image,
    alt: upload.name,
    width: 192,
    height: 192,
    class: 'map',
  });
  fill(
    section,
    h('h3', null, 'Neuron map'),
    h('p', { class: 'muted' }, 'Where in the image a neuron fires: its map over the model’s crop, in red.'),
    form,
    suggested.length
      ? h(
          'div',
          { class: 'chips', id: 'upload-map-suggestions' },
          h('span', { class: 'muted' }, 'Its largest contributions: '),
          ...suggested.map((item) =>
            h(
              'button',
              {
                type: 'button',
                class: 'chip',
                'data-neuron': item.neuron,
                title: item.label ?? 'unlabelled',
                onclick: () => void action(section, () => show(item.neuron)),
              },
              `#${item.neuron}`,
              item.label ? h('small', null, ` ${item.label}`) : null,
            ),
          ),
        )
      : null,
    h(
      'div',
      { class: 'map-pair' },
      h('figure', null, original, h('figcaption', null, 'the image')),
      h('figure', null, map, caption),
    ),
  );
  await show(Number(neuron.value) || 0);
}
