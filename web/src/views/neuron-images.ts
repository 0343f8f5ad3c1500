/**
 * The pictures that lead a neuron's page: in a chosen collection (default `probe`, else the first
 * with images), its top images by mean or maximum with values and categories, the neuron's map over
 * each on hover or tap (GET /v1/neurons/{id}/top-images, …/thumbnail, …/heatmap); examples from each
 * quantile band; and its distribution there (GET /v1/neurons/{id}/distribution): the histogram,
 * the mean activation per category, and the share of each category per activation bucket (the
 * article's conditional-probability plot).
 */
import { api, call, type Ok } from '../api';
import { groupColours, histogram, scoreBars, shareColumns } from '../charts';
import { action, field, fill, fmt, h } from '../dom';
import { collectionSelect, collectionsAndDefault, imageTile, type Pictures } from '../pictures';

const TOP = 12;
const CATEGORY_BARS = 12;
const BUCKET_COLOURS = 8;

/**
 * Draws the pictures of neuron `id` into `images` and `distribution`; `wanted` is a collection id
 * from the URL. Resolves once the first collection's pictures are drawn.
 */
export async function showNeuronPictures(
  images: HTMLElement,
  distribution: HTMLElement,
  id: number,
  wanted: string | undefined,
  pictures: Pictures,
): Promise<void> {
  fill(images, h('h3', null, 'Images that excite it'), h('p', { class: 'muted' }, 'loading…'));
  const { collections, chosen } = await collectionsAndDefault(wanted);
  if (!chosen) {
    fill(
      images,
      h('h3', null, 'Images that excite it'),
      h(
        'p',
        { class: 'muted', id: 'no-collections' },
        'No image collection yet: ',
        h('a', { href: '#/collections' }, 'create one and upload images'),
        ' to see which images excite this neuron.',
      ),
    );
    distribution.hidden = true;
    return;
  }
  const select = collectionSelect(collections, chosen.id);
  const by = h(
    'select',
    { name: 'by' },
    h('option', { value: 'mean' }, 'mean (spatial mean)'),
    h('option', { value: 'max' }, 'max (strongest cell)'),
  );
  const controls = h('form', { class: 'controls' }, field('Collection', select), field('Rank by', by));
  const top = h('div', { class: 'tiles pictures', id: 'top-images' });
  const bands = h('div', { id: 'quantile-bands' });
  const summary = h('p', { class: 'muted', id: 'top-images-summary' });
  fill(
    images,
    h('h3', null, 'Images that excite it'),
    controls,
    summary,
    top,
    h('h4', null, 'Examples across its range'),
    bands,
  );

  const draw = async () => {
    const collection = select.value;
    const rank = by.value === 'max' ? 'max' : 'mean';
    const [ranked, spread] = await Promise.all([
      call(
        api.GET('/v1/neurons/{id}/top-images', {
          params: { path: { id: String(id) }, query: { collection, k: TOP, by: rank, bins: 5, perBin: 4 } },
        }),
      ),
      call(
        api.GET('/v1/neurons/{id}/distribution', {
          params: { path: { id: String(id) }, query: { collection, by: rank, bins: 24, buckets: 6 } },
        }),
      ),
    ]);
    const valueName = rank === 'max' ? 'maximum' : 'spatial mean';
    fill(
      summary,
      `The ${ranked.top.length} of ${ranked.images} images of “${collection}” with the highest ${valueName}` +
        ` of neuron ${id}${ranked.complete ? '' : ' (the collection is still being built)'}. ` +
        'Hover or tap a picture for the neuron’s map over it.',
    );
    fill(
      top,
      ...ranked.top.map((image) => imageTile(pictures, collection, image, { neuron: id, valueName })),
    );
    fill(
      bands,
      ...ranked.quantiles.map((band) =>
        h(
          'section',
          { class: 'band', 'data-from': band.from, 'data-to': band.to },
          h(
            'h5',
            null,
            `${Math.round(100 * (1 - band.to))}–${Math.round(100 * (1 - band.from))}% from the top`,
          ),
          h(
            'div',
            { class: 'tiles small' },
            ...band.images.map((image) =>
              imageTile(pictures, collection, image, { neuron: id, valueName, size: 48 }),
            ),
          ),
        ),
      ),
    );
    drawDistribution(distribution, spread, valueName);
  };
  const redraw = () => void action(images, draw);
  select.addEventListener('change', () => {
    const hash = `#/neuron/${id}/${encodeURIComponent(select.value)}`;
    // Keeps the choice in the URL without drawing the page again.
    window.history.replaceState(null, '', hash);
    redraw();
  });
  by.addEventListener('change', redraw);
  await draw();
}

type Distribution = Ok<'/v1/neurons/{id}/distribution', 'get'>;

function drawDistribution(section: HTMLElement, spread: Distribution, valueName: string): void {
  section.hidden = false;
  const percent = (share: number) => `${fmt(100 * share)}%`;
  const categories = spread.categories.slice(0, CATEGORY_BARS);
  // The categories that are most of some bucket get colours, the highest shares first.
  const weight = new Map<string, number>();
  for (const bucket of spread.buckets)
    for (const { category, share } of bucket.shares)
      weight.set(category, Math.max(weight.get(category) ?? 0, share));
  const coloured = [...weight]
    .sort((a, b) => b[1] - a[1])
    .slice(0, BUCKET_COLOURS)
    .map(([name]) => name);
  const quantile = (q: number) => spread.quantiles.find((item) => Math.abs(item.q - q) < 1e-9)?.value;
  const median = quantile(0.5);
  fill(
    section,
    h('h3', null, `Its ${valueName} over “${spread.collection}”`),
    h(
      'dl',
      { class: 'facts inline', id: 'distribution-facts' },
      h('dt', null, 'images'),
      h('dd', null, String(spread.count)),
      h('dt', null, 'mean'),
      h('dd', null, fmt(spread.mean)),
      median !== undefined ? h('dt', null, 'median') : null,
      median !== undefined ? h('dd', null, fmt(median)) : null,
      h('dt', null, `fires (> ${fmt(spread.threshold)})`),
      h('dd', { id: 'firing' }, percent(spread.firing)),
    ),
    h('h4', null, 'Histogram'),
    h(
      'div',
      { id: 'histogram' },
      histogram(spread.histogram.edges, spread.histogram.counts, {
        label: `histogram of the ${valueName} of neuron ${spread.neuron} over ${spread.count} images, from ${fmt(spread.min)} to ${fmt(spread.max)}`,
        marker: spread.threshold,
        markerLabel: `${fmt(spread.threshold)} (firing threshold)`,
      }),
    ),
    h(
      'div',
      { class: 'compare' },
      h(
        'section',
        { id: 'category-means' },
        h('h4', null, 'Mean per category'),
        spread.categories.length > categories.length
          ? h('p', { class: 'muted' }, `the ${categories.length} highest of ${spread.categories.length}`)
          : null,
        scoreBars(
          categories.map((item) => ({ name: item.category, value: item.mean, note: `${item.count} img` })),
        ),
      ),
      h(
        'section',
        { id: 'category-buckets' },
        h('h4', null, 'Who is in each activation bucket'),
        h(
          'p',
          { class: 'muted' },
          'The share of each category among the images whose activation falls in the bucket (lowest on the left).',
        ),
        shareColumns(spread.buckets, coloured, groupColours(coloured)),
      ),
    ),
  );
}
