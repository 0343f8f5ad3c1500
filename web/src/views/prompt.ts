/**
 * Prompt: the neurons that carry a prompt (POST /v1/attribution/text), the strongest positive and
 * negative ones as bars; a second prompt is shown beside the first on the same scale.
 */
import { api, call } from '../api';
import { neuronBars, scaleOf } from '../charts';
import { action, field, fill, h } from '../dom';
import type { View } from './view';

export const promptView: View = (root, argument) => {
  const first = h('input', { name: 'first', type: 'text', value: 'a yellow star', autocomplete: 'off' });
  const second = h('input', { name: 'second', type: 'text', placeholder: 'optional', autocomplete: 'off' });
  const topK = h('input', { name: 'topK', type: 'number', min: 1, max: 50, value: 8 });
  const results = h('div', { class: 'compare', id: 'prompt-results' });
  const form = h(
    'form',
    { class: 'controls' },
    field('Prompt', first),
    field('Compare with', second),
    field('Neurons per side', topK),
    h('button', { type: 'submit' }, 'Attribute'),
  );

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    // An empty first prompt is sent as is: the API's validation message is what the user sees.
    const texts = [first.value, ...(second.value.trim() ? [second.value] : [])];
    // The address names the prompt (#/prompt/<text>) without redrawing the view.
    if (first.value) window.history.replaceState(null, '', `#/prompt/${encodeURIComponent(first.value)}`);
    void action(form, async () => {
      const { results: rows } = await call(
        api.POST('/v1/attribution/text', { body: { texts, topK: Number(topK.value) || 8 } }),
      );
      const scale = scaleOf(rows.flatMap((row) => [...row.top, ...row.bottom].map((item) => item.value)));
      fill(
        results,
        ...rows.map((row) =>
          h(
            'section',
            { class: 'card', 'data-prompt': row.text },
            h('h3', null, `“${row.text}”`),
            h('h4', null, 'Most positive'),
            neuronBars(row.top, scale),
            h('h4', null, 'Most negative'),
            neuronBars(row.bottom, scale),
          ),
        ),
      );
    });
  });

  root.append(
    h('h2', null, 'Prompt → neurons'),
    h(
      'p',
      { class: 'lead' },
      'The neurons of the last convolutional layer that carry a prompt: W · t for its text embedding t. ',
      'Each bar opens its neuron.',
    ),
    form,
    results,
  );
  first.focus();
  if (argument) {
    first.value = argument;
    form.requestSubmit();
  }
};
