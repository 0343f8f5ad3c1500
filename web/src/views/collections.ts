/**
 * Collections (#/collections or #/collections/{id}): the collections with their counts, categories
 * and build state (GET /v1/collections); a new one (POST /v1/collections); and one collection: its
 * build followed live (GET /v1/collections/{id} read a few times a second while it builds, which
 * works with an API key too, and its job's speed from GET /v1/jobs/{id}), an upload of images (POST /v1/collections/{id}/images, multipart,
 * many files, an optional category), a text search with thumbnails (GET /v1/collections/{id}/search),
 * and per category the neurons most selective for it (GET …/categories/{category}/neurons).
 */
import { api, call, type BuildProgress } from '../api';
import { neuronBars } from '../charts';
import { action, clearError, field, fill, fmt, h, showError } from '../dom';
import { imageTile, Pictures, type Collection } from '../pictures';
import type { View } from './view';

const BUILDING = new Set(['queued', 'running']);
const POLL_MS = 500;

export const collectionsView: View = (root, argument) => {
  const pictures = new Pictures();
  let stopPolling: (() => void) | undefined;
  const list = h('section', { class: 'card', id: 'collection-list' });
  const create = h('section', { class: 'card', id: 'collection-create' });
  const detail = h('section', { class: 'card', id: 'collection', hidden: true });
  root.append(
    h('h2', null, 'Collections'),
    h(
      'p',
      { class: 'lead' },
      'Sets of images whose neuron activations the service computes once and keeps: each neuron’s top images, distribution and categories come from them.',
    ),
    list,
    detail,
    create,
  );

  const showList = async () => {
    const { collections } = await call(api.GET('/v1/collections'));
    fill(list, h('h3', null, 'All collections'), collectionTable(collections, argument));
  };

  drawCreate(create);
  void action(list, showList);
  if (argument) {
    detail.hidden = false;
    void action(detail, async () => {
      stopPolling = await drawCollection(detail, argument, pictures, () => void showList().catch(showError));
    });
  }

  return () => {
    stopPolling?.();
    pictures.dispose();
  };
};

function buildWords(collection: Collection): string {
  const { build } = collection;
  if (BUILDING.has(build.state)) return `${build.state}: ${build.done} of ${build.total}`;
  if (build.state === 'idle')
    return collection.pending > 0 ? `${collection.pending} pending` : 'not built yet';
  return build.state;
}

function collectionTable(collections: readonly Collection[], current: string | undefined): HTMLElement {
  if (collections.length === 0) return h('p', { class: 'muted' }, 'None yet: create one below.');
  const rows = collections.map((collection) =>
    h(
      'tr',
      { 'data-collection': collection.id, 'aria-current': collection.id === current ? 'true' : null },
      h('th', { scope: 'row' }, h('a', { href: `#/collections/${collection.id}` }, collection.name)),
      h('td', { class: 'number' }, String(collection.images)),
      h('td', { class: 'number' }, String(collection.categories.length)),
      h(
        'td',
        { 'data-state': collection.build.state },
        BUILDING.has(collection.build.state)
          ? h('progress', {
              max: collection.build.total || 1,
              value: collection.build.done,
              'aria-label': `${collection.name}: build progress`,
            })
          : null,
        ' ',
        buildWords(collection),
      ),
    ),
  );
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: 'collections' },
      h(
        'thead',
        null,
        h(
          'tr',
          null,
          h('th', { scope: 'col' }, 'Name'),
          h('th', { scope: 'col', class: 'number' }, 'Images'),
          h('th', { scope: 'col', class: 'number' }, 'Categories'),
          h('th', { scope: 'col' }, 'Build'),
        ),
      ),
      h('tbody', null, ...rows),
    ),
  );
}

function drawCreate(section: HTMLElement): void {
  const name = h('input', {
    name: 'name',
    type: 'text',
    required: true,
    maxlength: 100,
    autocomplete: 'off',
  });
  const form = h(
    'form',
    { class: 'controls', id: 'create-form' },
    field('Name', name, 'letters and digits; the id is made from it'),
    h('button', { type: 'submit' }, 'Create'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void action(form, async () => {
      const created = await call(api.POST('/v1/collections', { body: { name: name.value } }));
      window.location.hash = `#/collections/${created.id}`;
    });
  });
  fill(section, h('h3', null, 'New collection'), form);
}

/** Draws one collection; returns what stops following its build. `onChange`: its counts or state changed. */
async function drawCollection(
  section: HTMLElement,
  id: string,
  pictures: Pictures,
  onChange: () => void,
): Promise<() => void> {
  const status = h('div', { id: 'build-status', 'aria-live': 'polite' });
  const facts = h('dl', { class: 'facts inline', id: 'collection-facts' });
  const categories = h('div', { id: 'categories' });
  const neurons = h('div', { id: 'category-neurons' });
  const upload = h('div', { id: 'upload' });
  const search = h('div', { id: 'collection-search' });
  const title = h('h3', null, id);
  fill(section, title, facts, status, upload, search, h('h4', null, 'Categories'), categories, neurons);

  let timer = 0;
  let active = true;
  let seen = '';
  const follow = async () => {
    window.clearTimeout(timer);
    const collection = await call(api.GET('/v1/collections/{id}', { params: { path: { id } } }));
    if (!active) return;
    title.textContent = collection.name;
    drawFacts(facts, collection);
    drawStatus(status, collection, await buildJob(collection));
    if (!active) return;
    drawCategories(categories, neurons, collection);
    const now = `${collection.build.state} ${collection.images} ${collection.pending}`;
    if (seen !== '' && now !== seen) onChange();
    seen = now;
    // Uploads not yet taken by a build are followed too, more slowly.
    if (BUILDING.has(collection.build.state)) timer = window.setTimeout(poll, POLL_MS);
    else if (collection.pending > 0) timer = window.setTimeout(poll, 4 * POLL_MS);
  };
  const poll = () => {
    follow().catch((error: unknown) => {
      if (active) showError(error);
    });
  };
  drawUpload(upload, id, poll);
  drawSearch(search, id, pictures);
  await follow();
  return () => {
    active = false;
    window.clearTimeout(timer);
  };
}

function drawFacts(facts: HTMLElement, collection: Collection): void {
  fill(
    facts,
    h('dt', null, 'id'),
    h('dd', null, h('code', null, collection.id)),
    h('dt', null, 'images'),
    h('dd', { id: 'collection-images' }, String(collection.images)),
    h('dt', null, 'pending'),
    h('dd', null, String(collection.pending)),
    h('dt', null, 'size'),
    h('dd', null, `${fmt(collection.bytes / 1024)} KiB`),
    h('dt', null, 'created'),
    h('dd', null, collection.createdAt.replace('T', ' ').replace(/\.\d+Z$/, ' UTC')),
  );
}

/** The running build's job progress (speed, shards), when the job API lets this client read it. */
async function buildJob(collection: Collection): Promise<BuildProgress | undefined> {
  const { jobId, state } = collection.build;
  if (jobId === null || !BUILDING.has(state)) return undefined;
  try {
    const job = await call(api.GET('/v1/jobs/{id}', { params: { path: { id: jobId } } }));
    return 'imagesPerSecond' in job.progress ? job.progress : undefined;
  } catch {
    return undefined; // another owner's job, or already gone: the collection's own counts suffice
  }
}

function drawStatus(status: HTMLElement, collection: Collection, job: BuildProgress | undefined): void {
  const { build } = collection;
  const speed =
    job && job.imagesPerSecond !== null
      ? ` · ${fmt(job.imagesPerSecond)} images/s` +
        (job.shards.total > 1 ? ` · shards ${job.shards.committed} of ${job.shards.total} done` : '')
      : '';
  status.dataset.state = build.state;
  const skipped = build.skipped.length
    ? h(
        'details',
        null,
        h('summary', null, `${build.skipped.length} files skipped`),
        h('ul', null, ...build.skipped.map((item) => h('li', null, `${item.name}: ${item.reason}`))),
      )
    : null;
  const duplicates = build.duplicates.length
    ? h('p', { class: 'muted' }, `${build.duplicates.length} duplicates stored once`)
    : null;
  fill(
    status,
    h('progress', {
      max: build.total || 1,
      value: BUILDING.has(build.state) || build.total > 0 ? build.done : 0,
      'aria-label': 'build progress',
    }),
    h(
      'p',
      { class: build.state === 'failed' ? 'verdict no' : 'muted' },
      build.state === 'idle' && build.total === 0
        ? 'No images yet: upload some below.'
        : `Build ${build.state}: ${build.done} of ${build.total} uploads taken, ${collection.images} images indexed` +
            (collection.pending ? `, ${collection.pending} pending` : '') +
            (build.error ? ` (${build.error})` : '') +
            speed,
    ),
    skipped,
    duplicates,
  );
}

function drawCategories(section: HTMLElement, neurons: HTMLElement, collection: Collection): void {
  const signature = JSON.stringify(collection.categories);
  if (section.dataset.signature === signature) return; // unchanged: keeps focus and the open list
  section.dataset.signature = signature;
  if (collection.categories.length === 0) {
    fill(section, h('p', { class: 'muted' }, 'No categories: give one with an upload.'));
    return;
  }
  const chips = collection.categories.map((category) =>
    h(
      'button',
      {
        type: 'button',
        class: 'chip',
        'data-category': category.name,
        'aria-controls': 'category-neurons',
        onclick: () =>
          void action(section, async () => {
            const found = await call(
              api.GET('/v1/collections/{id}/categories/{category}/neurons', {
                params: { path: { id: collection.id, category: category.name }, query: { k: 8 } },
              }),
            );
            // Their catalogue labels, so that a category's neurons read as what they are known for.
            const labels = await Promise.all(
              found.neurons.map((row) =>
                call(api.GET('/v1/neurons/{id}', { params: { path: { id: String(row.neuron) } } })).then(
                  (neuron) => neuron.label,
                  () => undefined,
                ),
              ),
            );
            fill(
              neurons,
              h('h4', null, `Neurons most selective for “${category.name}”`),
              h(
                'p',
                { class: 'muted' },
                `Cohen’s d of the mean activation over its ${found.inCategory} images against the other ${found.rest}.`,
              ),
              neuronBars(
                found.neurons.map((row, i) => ({
                  neuron: row.neuron,
                  value: row.d ?? row.meanIn,
                  label: labels[i] ?? undefined,
                })),
              ),
            );
            for (const link of neurons.querySelectorAll<HTMLAnchorElement>('a[data-neuron]')) {
              link.href = `#/neuron/${link.dataset.neuron}/${collection.id}`;
            }
          }),
      },
      category.name,
      h('small', null, ` ${category.count}`),
    ),
  );
  fill(section, h('div', { class: 'chips' }, ...chips));
}

function drawUpload(section: HTMLElement, id: string, onAccepted: () => void): void {
  const files = h('input', { name: 'images', type: 'file', accept: 'image/*', multiple: true });
  const category = h('input', { name: 'category', type: 'text', maxlength: 100, autocomplete: 'off' });
  const note = h('p', { class: 'muted', id: 'upload-result', 'aria-live': 'polite' });
  const form = h(
    'form',
    { class: 'controls', id: 'upload-form' },
    field('Images', files, 'one or more PNG, JPEG, WebP or GIF files'),
    field('Category', category, 'optional, for all of them'),
    h('button', { type: 'submit' }, 'Upload'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void action(form, async () => {
      fill(note);
      const chosen = [...(files.files ?? [])];
      const body = new FormData();
      if (category.value.trim()) body.append('category', category.value.trim());
      for (const file of chosen) body.append('image', file, file.name);
      // The body is multipart (FormData): openapi-fetch sends it as is, with its boundary. With no
      // file the request still goes out, and the API says what to send.
      const accepted = await call(
        api.POST('/v1/collections/{id}/images', {
          params: { path: { id } },
          body: body as never,
        }),
      );
      const named = category.value.trim() ? ` (category “${category.value.trim()}”)` : '';
      // The build's progress above says how many are still waiting.
      fill(note, `${accepted.accepted} files accepted${named}.`);
      form.reset();
      onAccepted();
    });
  });
  fill(section, h('h4', null, 'Add images'), form, note);
}

function drawSearch(section: HTMLElement, id: string, pictures: Pictures): void {
  const text = h('input', { name: 'text', type: 'search', required: true, autocomplete: 'off' });
  const results = h('div', { class: 'tiles pictures', id: 'search-results' });
  const form = h(
    'form',
    { class: 'controls', role: 'search' },
    field('Search by text', text, 'cosine of the CLIP image and text embeddings'),
    h('button', { type: 'submit' }, 'Search'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    clearError();
    void action(form, async () => {
      const found = await call(
        api.GET('/v1/collections/{id}/search', {
          params: { path: { id }, query: { text: text.value, k: 12 } },
        }),
      );
      fill(
        results,
        ...found.results.map((result) =>
          imageTile(pictures, id, { ...result, value: result.score }, { valueName: 'cosine' }),
        ),
      );
      if (found.results.length === 0) fill(results, h('p', { class: 'muted' }, 'No images indexed yet.'));
    });
  });
  fill(section, h('h4', null, 'Search'), form, results);
}
