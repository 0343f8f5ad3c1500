/**
 * Words: image-based word embeddings (words rastered as images and read by the vision side).
 * Nearest neighbours (GET /v1/words/neighbors) and arithmetic (POST /v1/words/arithmetic), each with
 * the lexical (spelling) neurons masked and unmasked, side by side.
 */
import { api, call } from '../api';
import { scoreBars } from '../charts';
import { action, field, fill, h } from '../dom';
import type { View } from './view';

const MASKS = ['lexical', 'none'] as const;

/**
 * Column titles; the masked one says how many neurons the mask takes out and from which sources
 * (the catalogue's lexical family, the detector's flags: GET /v1/neurons/lexical).
 */
async function titles(): Promise<string[]> {
  const lexical = await call(api.GET('/v1/neurons/lexical'));
  const { use } = lexical;
  const masked = `Lexical neurons masked (${lexical.set.length} of ${lexical.neurons.length}: ${use.catalogue} from the catalogue, ${use.detected} detected at threshold ${lexical.threshold})`;
  return [masked, 'All neurons'];
}

function columns(id: string, lists: { title: string; items: { word: string; score: number }[] }[]) {
  return h(
    'div',
    { class: 'compare', id },
    ...lists.map((list) =>
      h(
        'section',
        { class: 'card' },
        h('h4', null, list.title),
        list.items.length > 0
          ? scoreBars(list.items.map((item) => ({ name: item.word, value: item.score })))
          : h('p', { class: 'muted' }, 'no words'),
      ),
    ),
  );
}

export const wordsView: View = (root) => {
  let known: Promise<string[]> | undefined;
  const columnTitles = () => {
    known ??= titles().catch((error: unknown) => {
      known = undefined;
      throw error;
    });
    return known;
  };
  const word = h('input', { name: 'word', type: 'text', value: 'red', autocomplete: 'off' });
  const k = h('input', { name: 'k', type: 'number', min: 1, max: 100, value: 8 });
  const near = h('div');
  const nearForm = h(
    'form',
    { class: 'controls' },
    field('Word', word),
    field('Neighbours', k),
    h('button', { type: 'submit' }, 'Find'),
  );
  nearForm.addEventListener('submit', (event) => {
    event.preventDefault();
    void action(nearForm, async () => {
      const [names, answers] = await Promise.all([
        columnTitles(),
        Promise.all(
          MASKS.map((mask) =>
            call(
              api.GET('/v1/words/neighbors', {
                params: { query: { word: word.value, k: Number(k.value) || 8, mask } },
              }),
            ),
          ),
        ),
      ]);
      const note = answers[0].inVocabulary ? '' : ' (not in the vocabulary: rastered and read on the fly)';
      fill(
        near,
        h('p', { class: 'muted' }, `Nearest words to “${answers[0].word}”${note}`),
        columns(
          'neighbors',
          answers.map((answer, i) => ({ title: names[i], items: answer.neighbors })),
        ),
      );
    });
  });

  const expression = h('input', {
    name: 'expression',
    type: 'text',
    value: 'red - apple + banana',
    autocomplete: 'off',
  });
  const method = h(
    'select',
    { name: 'method' },
    h('option', { value: 'add' }, '3CosAdd'),
    h('option', { value: 'mul' }, '3CosMul'),
  );
  const sums = h('div');
  const sumForm = h(
    'form',
    { class: 'controls' },
    field('Expression', expression, 'words joined by + and −'),
    field('Method', method),
    h('button', { type: 'submit' }, 'Compute'),
  );
  sumForm.addEventListener('submit', (event) => {
    event.preventDefault();
    void action(sumForm, async () => {
      const chosen = method.value === 'mul' ? 'mul' : 'add';
      const [names, answers] = await Promise.all([
        columnTitles(),
        Promise.all(
          MASKS.map((mask) =>
            call(
              api.POST('/v1/words/arithmetic', {
                body: { expression: expression.value, k: Number(k.value) || 8, mask, method: chosen },
              }),
            ),
          ),
        ),
      ]);
      const terms = answers[0].terms.map(
        (term, i) => `${term.sign < 0 ? '−' : i > 0 ? '+' : ''} ${term.text}`,
      );
      fill(
        sums,
        h('p', { class: 'muted' }, `${terms.join(' ')} (${answers[0].method})`),
        columns(
          'arithmetic',
          answers.map((answer, i) => ({ title: names[i], items: answer.results })),
        ),
      );
    });
  });

  root.append(
    h('h2', null, 'Words'),
    h(
      'p',
      { class: 'lead' },
      'Words as the vision side sees them: each word is rastered as an image and embedded by its neurons. ',
      'Masking the lexical neurons (those that read spelling) leaves meaning.',
    ),
    h('section', { class: 'card' }, h('h3', null, 'Neighbours'), nearForm, near),
    h('section', { class: 'card' }, h('h3', null, 'Arithmetic'), sumForm, sums),
  );
  nearForm.requestSubmit();
};
