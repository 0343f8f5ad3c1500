/**
 * Neurons (#/neurons or #/neurons/{query}): the model's neurons as a table (GET /v1/neurons), each
 * row a link to its page, with its catalogue label and family, whether it is lexical, its automatic
 * label and its multimodality. A label search, filters by family and lexical or not, a sort (id,
 * label, multimodality) and a collection; the state lives in the URL (`q`, `family`, `lexical`,
 * `sort`, `collection`, `offset`), so a page of the list can be linked and the back button works.
 */
import { api, call, type Ok, type paths } from '../api';
import { action, field, fill, fmt, h } from '../dom';
import type { View } from './view';

type List = Ok<'/v1/neurons', 'get'>;
type Query = NonNullable<paths['/v1/neurons']['get']['parameters']['query']>;
const LIMIT = 50;
const SORTS = ['id', 'label', 'multimodality'] as const;

/** The list's query from the URL's argument (unknown or malformed fields are left to the API to refuse). */
function queryOf(argument: string | undefined): Query {
  const params = new URLSearchParams(argument ?? '');
  const query: Query = { limit: LIMIT };
  const q = params.get('q');
  if (q) query.q = q;
  const family = params.get('family');
  if (family) query.family = family;
  const lexical = params.get('lexical');
  if (lexical === 'true' || lexical === 'false') query.lexical = lexical;
  const sort = params.get('sort');
  if (sort && (SORTS as readonly string[]).includes(sort)) query.sort = sort as Query['sort'];
  const collection = params.get('collection');
  if (collection) query.collection = collection;
  const offset = Number(params.get('offset'));
  if (Number.isInteger(offset) && offset > 0) query.offset = offset;
  return query;
}

function hashOf(query: Query): string {
  const params = new URLSearchParams();
  for (const name of ['q', 'family', 'lexical', 'sort', 'collection', 'offset'] as const) {
    const value = query[name];
    if (value !== undefined && value !== '' && !(name === 'offset' && value === 0))
      params.set(name, String(value));
  }
  const text = params.toString();
  return text ? `#/neurons/${encodeURIComponent(text)}` : '#/neurons';
}

function options(select: HTMLSelectElement, entries: [string, string][], chosen: string | undefined): void {
  for (const [value, text] of entries) {
    const option = h('option', { value }, text);
    option.selected = value === (chosen ?? '');
    select.append(option);
  }
}

export const neuronsView: View = (root, argument) => {
  const query = queryOf(argument);
  const search = h('input', {
    name: 'q',
    type: 'search',
    value: query.q ?? '',
    placeholder: 'label or automatic label',
    autocomplete: 'off',
    maxlength: 100,
  });
  const family = h('select', { name: 'family' });
  const lexical = h('select', { name: 'lexical' });
  options(
    lexical,
    [
      ['', 'any'],
      ['true', 'lexical'],
      ['false', 'not lexical'],
    ],
    query.lexical,
  );
  const sort = h('select', { name: 'sort' });
  options(
    sort,
    [
      ['id', 'id'],
      ['label', 'label'],
      ['multimodality', 'multimodality (highest first)'],
    ],
    query.sort ?? 'id',
  );
  const collection = h('select', { name: 'collection' });
  const form = h(
    'form',
    { class: 'controls', id: 'neurons-form' },
    field('Search', search),
    field('Family', family),
    field('Lexical', lexical),
    field('Sort', sort),
    field('Collection', collection, 'for the measure and automatic labels'),
    h('button', { type: 'submit' }, 'Show'),
  );
  const summary = h('p', { class: 'muted', id: 'neurons-summary', 'aria-live': 'polite' });
  const table = h('div', { class: 'table-wrap' });
  const pages = h('nav', { class: 'pages', 'aria-label': 'Pages' });
  root.append(h('h2', null, 'Neurons'), form, summary, table, pages);

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    window.location.hash = hashOf({
      q: search.value.trim() || undefined,
      family: family.value || undefined,
      lexical: (lexical.value || undefined) as Query['lexical'],
      sort: sort.value as Query['sort'],
      collection: collection.value || undefined,
    });
  });

  void action(root, async () => {
    const [{ collections }, list] = await Promise.all([
      call(api.GET('/v1/collections')),
      call(api.GET('/v1/neurons', { params: { query } })).catch((error: unknown) => {
        fill(summary, 'The list is not available with these choices.');
        if (query.family) options(family, [[query.family, query.family]], query.family);
        throw error;
      }),
    ]);
    options(
      family,
      [['', 'any'], ...list.families.map((name): [string, string] => [name, name]), ['none', 'none']],
      query.family,
    );
    options(
      collection,
      [
        ['', 'default (“probe” if there is one)'],
        ...collections.map((item): [string, string] => [item.id, `${item.name} (${item.images} images)`]),
      ],
      query.collection,
    );
    draw(list, query, summary, table, pages);
  });
};

function draw(list: List, query: Query, summary: HTMLElement, table: HTMLElement, pages: HTMLElement): void {
  const offset = query.offset ?? 0;
  const shown = list.neurons.length;
  fill(
    summary,
    shown === 0
      ? `No neuron passes these filters (of ${list.total}).`
      : `Neurons ${offset + 1}–${offset + shown} of ${list.total}` +
          (list.collection ? `, measured on “${list.collection}”` : ', no collection: no measure') +
          (list.multimodalShare !== null
            ? `; the measure calls ${fmt(100 * list.multimodalShare, 3)}% of the model’s neurons multimodal.`
            : '.'),
  );
  const neuronHref = (id: number) => `#/neuron/${id}${list.collection ? `/${list.collection}` : ''}`;
  const rows = list.neurons.map((neuron) =>
    h(
      'tr',
      { 'data-neuron': neuron.id },
      h('td', { class: 'number' }, h('a', { href: neuronHref(neuron.id) }, `#${neuron.id}`)),
      h('td', null, h('a', { href: neuronHref(neuron.id) }, neuron.label ?? 'unlabelled')),
      h('td', null, neuron.family ?? '–'),
      h('td', null, neuron.lexical ? 'yes' : 'no'),
      h(
        'td',
        null,
        neuron.autoLabel ? neuron.autoLabel.concept : '–',
        neuron.autoLabel ? h('small', { class: 'muted' }, ` ${fmt(neuron.autoLabel.score)}`) : null,
      ),
      h(
        'td',
        { class: 'number' },
        neuron.multimodality?.score !== null && neuron.multimodality?.score !== undefined
          ? fmt(neuron.multimodality.score, 2)
          : '–',
      ),
      h(
        'td',
        null,
        neuron.multimodality
          ? `${neuron.multimodality.multimodal ? '✓ ' : ''}${neuron.multimodality.topCategory}`
          : '–',
      ),
    ),
  );
  fill(
    table,
    h(
      'table',
      { class: 'collections neurons', id: 'neurons-table' },
      h(
        'thead',
        null,
        h(
          'tr',
          null,
          h('th', { class: 'number' }, 'Neuron'),
          h('th', null, 'Label'),
          h('th', null, 'Family'),
          h('th', null, 'Lexical'),
          h('th', null, 'Automatic label'),
          h('th', { class: 'number', title: 'The mean of the three sides’ Spearman ρ' }, 'Multimodality'),
          h('th', { title: 'What it sees most (✓: also what it reads and speaks for)' }, 'Top category'),
        ),
      ),
      h('tbody', null, ...rows),
    ),
  );
  const link = (text: string, to: number, rel: string) =>
    h('a', { href: hashOf({ ...query, offset: to }), rel, class: 'page-link' }, text);
  fill(
    pages,
    offset > 0 ? link('← previous', Math.max(0, offset - LIMIT), 'prev') : null,
    offset + shown < list.total ? link('next →', offset + LIMIT, 'next') : null,
  );
}
