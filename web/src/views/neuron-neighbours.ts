/**
 * A neuron's cosine neighbours, both kinds side by side (GET /v1/neurons/{id}/neighbours): by its
 * row of W (the texts it speaks for) and by its activations over the page's collection (Pearson's
 * r of the centred columns). Each neighbour links to its own page, in the same collection. An
 * answer the API cannot give (no collection, a neuron constant over its images) is said in its column.
 */
import { api, ApiError, call, type Ok } from '../api';
import { neuronBars } from '../charts';
import { fill, h } from '../dom';
import { collectionsAndDefault } from '../pictures';

type Neighbours = Ok<'/v1/neurons/{id}/neighbours', 'get'>;
const K = 8;

export async function showNeighbours(section: HTMLElement, id: number, wanted: string | undefined) {
  fill(section, h('h3', null, 'Neighbours'), h('p', { class: 'muted' }, 'loading…'));
  const { chosen } = await collectionsAndDefault(wanted);
  const collection = chosen && chosen.images > 0 ? chosen.id : undefined;
  const ask = async (by: 'weights' | 'activations'): Promise<Neighbours | string> => {
    if (by === 'activations' && !collection)
      return 'No collection with images: its activations are not known.';
    try {
      return await call(
        api.GET('/v1/neurons/{id}/neighbours', {
          params: { path: { id: String(id) }, query: { by, k: K, ...(collection ? { collection } : {}) } },
        }),
      );
    } catch (error) {
      if (!(error instanceof ApiError) || error.status >= 500 || error.status === 0) throw error;
      return `Not available: ${error.message}.`;
    }
  };
  const [weights, activations] = await Promise.all([ask('weights'), ask('activations')]);
  const column = (key: string, title: string, note: string, answer: Neighbours | string) => {
    if (typeof answer === 'string') {
      return h('section', { id: key }, h('h4', null, title), h('p', { class: 'muted' }, answer));
    }
    const bars = neuronBars(
      answer.neighbours.map((row) => ({
        neuron: row.neuron,
        value: row.cosine,
        label: row.label ?? undefined,
      })),
      1,
    );
    if (collection) {
      for (const link of bars.querySelectorAll<HTMLAnchorElement>('a[data-neuron]')) {
        link.href = `#/neuron/${link.dataset.neuron}/${collection}`;
      }
    }
    return h('section', { id: key }, h('h4', null, title), h('p', { class: 'muted' }, note), bars);
  };
  fill(
    section,
    h('h3', null, 'Neighbours'),
    h(
      'div',
      { class: 'compare' },
      column(
        'neighbours-weights',
        'By its row of W',
        'Cosine of the attribution directions in text-embedding space: neurons that speak for the same texts.',
        weights,
      ),
      column(
        'neighbours-activations',
        collection ? `By its activations over “${collection}”` : 'By its activations',
        typeof activations === 'string'
          ? ''
          : `Pearson’s r over its ${activations.images} images: neurons that fire on the same images.`,
        activations,
      ),
    ),
  );
}
