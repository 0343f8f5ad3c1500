/**
 * The intervention check on real pictures: the neuron zeroed at every cell of the neuron layer on
 * its top images of a collection (POST /v1/interventions, the images' thumbnails as sent), and the
 * zero-shot answer among the collection's categories before and after: does the logit (and the
 * probability) of each image's own category fall without it? The thumbnails are at most 64 px a
 * side, so on a model with a larger input the images are upscaled first (said in the card).
 */
import { api, call } from '../api';
import { action, fill, fmt, h } from '../dom';
import { collectionsAndDefault, type Pictures } from '../pictures';

const TOP = 6;
/** POST /v1/interventions takes at most 64 labels. */
const MAX_LABELS = 64;

async function base64Of(blob: Blob): Promise<string> {
  const bytes = new Uint8Array(await blob.arrayBuffer());
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000)
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

export async function drawAblation(
  section: HTMLElement,
  id: number,
  wanted: string | undefined,
  pictures: Pictures,
): Promise<void> {
  const { chosen } = await collectionsAndDefault(wanted);
  if (!chosen || chosen.images === 0 || chosen.categories.length === 0) {
    fill(
      section,
      h('h4', null, 'Zeroed on its top images'),
      h('p', { class: 'muted' }, 'Needs a collection with categorised images.'),
    );
    return;
  }
  const collection = chosen.id;
  const out = h('div', { id: 'ablation-result' });
  const run = h('button', { type: 'button', id: 'ablation-run' }, `Zero it on its top ${TOP} images`);
  run.addEventListener('click', () => {
    void action(section, async () => {
      fill(out, h('p', { class: 'muted' }, 'running…'));
      const ranked = await call(
        api.GET('/v1/neurons/{id}/top-images', {
          params: { path: { id: String(id) }, query: { collection, k: TOP, by: 'mean', bins: 0 } },
        }),
      );
      const images = await Promise.all(
        ranked.top.map(async (image) =>
          base64Of(
            await call(
              api.GET('/v1/collections/{id}/images/{imageId}/thumbnail', {
                params: { path: { id: collection, imageId: String(image.imageId) } },
                parseAs: 'blob',
              }),
            ),
          ),
        ),
      );
      // The top images' own categories first, then the collection's others, up to the limit.
      const own = ranked.top.map((image) => image.category).filter((name): name is string => !!name);
      const labels = [...new Set([...own, ...chosen.categories.map((category) => category.name)])].slice(
        0,
        MAX_LABELS,
      );
      const answer = await call(
        api.POST('/v1/interventions', {
          body: { images, edits: [{ neuron: id, op: 'zero' }], labels, embedding: false },
        }),
      );
      const results = 'images' in answer ? answer.images : [answer];
      const rows = ranked.top.map((image, i) => {
        const result = results[i];
        const truth = result.labels.find((label) => label.label === image.category);
        return { image, result, truth };
      });
      const checked = rows.flatMap((row) => (row.truth ? [row.truth] : []));
      const meanOf = (values: number[]) => values.reduce((sum, v) => sum + v, 0) / Math.max(1, values.length);
      const logit = meanOf(checked.map((truth) => truth.logitChange));
      const probability = meanOf(checked.map((truth) => truth.after - truth.before));
      const flipped = rows.filter((row) => row.result.predictedBefore !== row.result.predictedAfter).length;
      fill(
        out,
        h(
          'p',
          { class: logit < 0 ? 'verdict yes' : 'verdict no', id: 'ablation-verdict' },
          checked.length
            ? `Without it, the logit of each image’s own category ${logit < 0 ? 'fell' : 'did not fall'}: ` +
                `${fmt(logit, 3)} on average (its probability ${fmt(probability, 3)}); the answer changed on ${flipped} of ${rows.length}.`
            : `No category to check; the answer changed on ${flipped} of ${rows.length}.`,
        ),
        h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            { class: 'collections neurons', id: 'ablation-table' },
            h(
              'thead',
              null,
              h(
                'tr',
                null,
                h('th', null, 'Image'),
                h('th', null, 'Category'),
                h('th', { class: 'number' }, 'P before'),
                h('th', { class: 'number' }, 'P after'),
                h('th', { class: 'number' }, 'Logit change'),
                h('th', null, 'Answer before → after'),
              ),
            ),
            h(
              'tbody',
              null,
              ...rows.map(({ image, result, truth }) =>
                h(
                  'tr',
                  {
                    'data-image-id': image.imageId,
                    'data-before': truth?.before,
                    'data-after': truth?.after,
                    'data-logit-change': truth?.logitChange,
                    'data-answer': `${result.predictedBefore} → ${result.predictedAfter}`,
                  },
                  h('td', null, pictures.thumbnail(collection, image.imageId, image.name, 32)),
                  h('td', null, image.category ?? '–'),
                  h('td', { class: 'number' }, truth ? fmt(truth.before, 3) : '–'),
                  h('td', { class: 'number' }, truth ? fmt(truth.after, 3) : '–'),
                  h('td', { class: 'number' }, truth ? fmt(truth.logitChange, 3) : '–'),
                  h('td', null, `${result.predictedBefore} → ${result.predictedAfter}`),
                ),
              ),
            ),
          ),
        ),
      );
    });
  });
  fill(
    section,
    h('h4', null, `Zeroed on its top images of “${collection}”`),
    h(
      'p',
      { class: 'muted' },
      `Sets this neuron to 0 at every cell on its ${TOP} top images (their thumbnails, at most 64 px a side) and asks the zero-shot answer among the ${Math.min(MAX_LABELS, chosen.categories.length)} categories before and after.`,
    ),
    run,
    out,
  );
}
