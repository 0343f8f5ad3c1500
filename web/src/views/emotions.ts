/**
 * Emotions: the low-rank atlas of emotion words (GET /v1/emotions/atlas) as a scatter plot coloured
 * by core emotion (from the feelings wheel, GET /v1/emotions); a click shows an emotion's sparse
 * composition over neurons (GET /v1/emotions/{name}).
 */
import { api, call } from '../api';
import { groupColours, neuronBars, scatter } from '../charts';
import { action, field, fill, fmt, h } from '../dom';
import type { View } from './view';

export const emotionsView: View = (root, argument) => {
  const factors = h(
    'select',
    { name: 'factors' },
    h('option', { value: '7' }, '7 factors'),
    h('option', { value: '2' }, '2 factors'),
  );
  const form = h(
    'form',
    { class: 'controls' },
    field('Atlas', factors),
    h('button', { type: 'submit' }, 'Draw'),
  );
  const plot = h('section', { class: 'card', id: 'atlas' });
  const detail = h(
    'section',
    { class: 'card', id: 'emotion' },
    h('p', { class: 'muted' }, 'Click an emotion.'),
  );

  const select = (name: string) => {
    void action(detail, async () => {
      const emotion = await call(api.GET('/v1/emotions/{name}', { params: { path: { name } } }));
      const sum = emotion.neurons
        .map((item, i) => `${item.weight < 0 ? '− ' : i > 0 ? '+ ' : ''}${item.label ?? `#${item.neuron}`}`)
        .join(' ');
      fill(
        detail,
        h('h3', null, emotion.name),
        h('p', { class: 'equation' }, `${emotion.name} ≈ ${sum}`),
        h(
          'p',
          { class: 'muted' },
          `core: ${emotion.cores.join(', ')} · ring: ${emotion.ring} · λ = ${fmt(emotion.lambda)}`,
        ),
        neuronBars(emotion.neurons.map((item) => ({ ...item, value: item.weight }))),
      );
    });
  };

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    fill(plot, h('p', { class: 'muted' }, 'Fitting the atlas…'));
    void action(form, async () => {
      const [wheel, atlas] = await Promise.all([
        call(api.GET('/v1/emotions')),
        call(
          api.GET('/v1/emotions/atlas', { params: { query: { factors: factors.value === '2' ? 2 : 7 } } }),
        ),
      ]).catch((error: unknown) => {
        fill(plot, h('p', { class: 'muted' }, 'The atlas is not available.'));
        throw error;
      });
      const about = new Map(wheel.emotions.map((emotion) => [emotion.name, emotion]));
      const points = atlas.emotions.map((emotion) => {
        const known = about.get(emotion.name);
        return {
          name: emotion.name,
          x: emotion.x,
          y: emotion.y,
          group: known?.cores[0] ?? 'other',
          labelled: known?.ring === 'core',
        };
      });
      const colours = groupColours(
        wheel.wheel.map((core) => core.name.toLowerCase()).concat(points.map((p) => p.group)),
      );
      const legend = h(
        'ul',
        { class: 'legend' },
        ...[...colours].map(([group, colour]) => {
          const swatch = h('span', { class: 'swatch' });
          swatch.style.background = colour;
          return h('li', null, swatch, group);
        }),
      );
      fill(
        plot,
        h('h3', null, `Atlas: ${atlas.emotions.length} emotions, ${atlas.factors} factors`),
        scatter(points, colours, select),
        legend,
        h(
          'details',
          null,
          h('summary', null, 'Factors'),
          h(
            'ol',
            { class: 'factors' },
            ...atlas.factorTops.map((top) =>
              h(
                'li',
                null,
                top.emotions.map((emotion) => emotion.name).join(', '),
                h(
                  'small',
                  null,
                  ` — ${top.neurons.map((n) => `${n.sign < 0 ? '−' : '+'}${n.label ?? `#${n.neuron}`}`).join(' ')}`,
                ),
              ),
            ),
          ),
        ),
      );
    });
  });

  root.append(
    h('h2', null, 'Emotions'),
    h(
      'p',
      { class: 'lead' },
      'Each emotion word is a sparse combination of neurons; the atlas factors all of them at once. ',
      'Colours are the core emotions of the feelings wheel.',
    ),
    form,
    h('div', { class: 'atlas-layout' }, plot, detail),
  );
  form.requestSubmit();
  if (argument) select(argument);
};
