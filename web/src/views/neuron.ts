/**
 * Neuron (#/neuron/{id} or #/neuron/{id}/{collection}): its catalogue label (GET /v1/neurons/{id});
 * first its pictures in a collection (neuron-images.ts: top images with their heatmaps, examples of
 * each quantile band, histogram, category bars); then the reading side, the words that excite it
 * most and least with the images the model reads them from (GET /v1/neurons/{id}/top-words,
 * GET /v1/raster); the speaking side, the texts it carries most W·t/|t| for; a search for its
 * maximal text followed live over Server-Sent Events (POST /v1/search/max-text,
 * GET /v1/jobs/{id}/events); the intervention check (POST /v1/attribution/verify on a blank image,
 * and the neuron zeroed on its top images, neuron-ablation.ts); its three sides'
 * agreement and automatic labels (neuron-evidence.ts); its cosine neighbours by W and by
 * activations (neuron-neighbours.ts). The list of neurons is the Neurons view (neurons.ts).
 */
import { api, ApiError, apiKey, call, jobEventsUrl, type Job, type JobProgress } from '../api';
import { line, scoreBars } from '../charts';
import { action, clearError, field, fill, fmt, h, showError } from '../dom';
import { Pictures } from '../pictures';
import { drawAblation } from './neuron-ablation';
import { showEvidence } from './neuron-evidence';
import { showNeuronPictures } from './neuron-images';
import { showNeighbours } from './neuron-neighbours';
import type { View } from './view';

type Progress = JobProgress & { id: string; state: Job['state'] };

const ENDINGS = ['completed', 'failed', 'cancelled'] as const;
type Ending = (typeof ENDINGS)[number];
const isEnding = (state: Job['state']): state is Ending => (ENDINGS as readonly string[]).includes(state);

export const neuronView: View = (root, argument) => {
  const [first, collection] = (argument ?? '').split('/');
  const id = /^\d+$/.test(first) ? Number(first) : undefined;
  const urls: string[] = [];
  const pictures = new Pictures();
  let stopSearch: (() => void) | undefined;

  const input = h('input', { name: 'neuron', type: 'number', min: 0, value: id ?? 0, inputmode: 'numeric' });
  const pick = h(
    'form',
    { class: 'controls' },
    field('Neuron', input),
    h('button', { type: 'submit' }, 'Show'),
  );
  pick.addEventListener('submit', (event) => {
    event.preventDefault();
    window.location.hash = `#/neuron/${input.value.trim() || '0'}`;
  });
  root.append(h('h2', null, 'Neuron'), pick);
  if (id === undefined) {
    root.append(
      h(
        'p',
        { class: 'lead' },
        'Pick a neuron, open one from the bars of the Prompt view, or browse ',
        h('a', { href: '#/neurons' }, 'the list of neurons'),
        '.',
      ),
    );
    return;
  }

  const about = h('section', { class: 'card', id: 'neuron-about' });
  const images = h('section', { class: 'card', id: 'neuron-images' });
  const distribution = h('section', { class: 'card', id: 'neuron-distribution', hidden: true });
  const words = h('section', { class: 'card', id: 'neuron-words' });
  const speaking = h('section', { class: 'card', id: 'neuron-speaking' });
  const search = h('section', { class: 'card', id: 'search' });
  const evidence = h('section', { class: 'card', id: 'neuron-evidence' });
  const verify = h('section', { class: 'card', id: 'verify' });
  const neighbours = h('section', { class: 'card', id: 'neuron-neighbours' });
  root.append(
    about,
    images,
    distribution,
    h('div', { class: 'compare' }, words, speaking),
    search,
    verify,
    evidence,
    neighbours,
  );

  void action(about, async () => {
    const neuron = await call(api.GET('/v1/neurons/{id}', { params: { path: { id: String(id) } } }));
    fill(
      about,
      h('h3', null, `#${neuron.id} `, h('span', { class: 'neuron-label' }, neuron.label ?? 'unlabelled')),
      h(
        'p',
        { class: 'muted' },
        [neuron.family, neuron.source, neuron.score !== undefined ? `score ${fmt(neuron.score)}` : undefined]
          .filter(Boolean)
          .join(' · '),
      ),
    );
    drawSearch(search, id, (stop) => (stopSearch = stop));
    drawVerify(verify, id, neuron.label ?? '');
    const ablation = h('section', { id: 'ablation' });
    verify.append(ablation);
    void action(ablation, () => drawAblation(ablation, id, collection, pictures));
    void action(images, () => showNeuronPictures(images, distribution, id, collection, pictures));
    void action(evidence, () => showEvidence(evidence, speaking, id, collection));
    void action(neighbours, () => showNeighbours(neighbours, id, collection));
    await showWords(words, id, urls);
  });

  return () => {
    stopSearch?.();
    pictures.dispose();
    for (const url of urls) URL.revokeObjectURL(url);
  };
};

async function showWords(section: HTMLElement, id: number, urls: string[]): Promise<void> {
  fill(section, h('h3', null, 'Words'), h('p', { class: 'muted' }, 'loading…'));
  const ranked = await call(
    api.GET('/v1/neurons/{id}/top-words', { params: { path: { id }, query: { k: 6 } } }),
  ).catch((error: unknown) => {
    // 409: the word index is not built (yet). Said here: the pictures above need no banner over them.
    const conflict = error instanceof ApiError && error.status === 409;
    fill(
      section,
      h('h3', null, 'Words'),
      h(
        'p',
        { class: 'muted', id: 'words-missing' },
        conflict ? `The words are not available: ${error.message}.` : 'The words are not available.',
      ),
    );
    if (!conflict) throw error;
    return undefined;
  });
  if (!ranked) return;
  const failures: unknown[] = [];
  const tile = (word: { word: string; activation: number }) => {
    const image = h('img', { alt: `“${word.word}” as an image`, width: 64, height: 64 });
    api
      .GET('/v1/raster', { params: { query: { text: word.word } }, parseAs: 'blob' })
      .then((result) => call(Promise.resolve(result)))
      .then((blob) => {
        const url = URL.createObjectURL(blob);
        urls.push(url);
        image.src = url;
      })
      .catch((error: unknown) => {
        if (failures.push(error) === 1) showError(error);
      });
    return h(
      'figure',
      { class: 'word' },
      image,
      h('figcaption', null, word.word, h('small', null, fmt(word.activation))),
    );
  };
  fill(
    section,
    h('h3', null, 'Words'),
    h('h4', null, 'Most activating'),
    h('div', { class: 'tiles', id: 'top-words' }, ...ranked.top.map(tile)),
    h('h4', null, 'Least activating'),
    h('div', { class: 'tiles', id: 'bottom-words' }, ...ranked.bottom.map(tile)),
  );
}

function drawVerify(section: HTMLElement, id: number, label: string): void {
  const text = h('input', { name: 'text', type: 'text', value: label || 'a photo', autocomplete: 'off' });
  const out = h('div', { id: 'verify-result' });
  const form = h(
    'form',
    { class: 'controls' },
    field('Text', text),
    h('button', { type: 'submit' }, 'Check'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void action(form, async () => {
      const check = await call(
        api.POST('/v1/attribution/verify', { body: { text: text.value, neurons: [id] } }),
      );
      const row = check.neurons[0];
      fill(
        out,
        h(
          'p',
          { class: row?.rose ? 'verdict yes' : 'verdict no' },
          row?.rose ? 'The logit rose.' : 'The logit did not rise.',
        ),
        h(
          'dl',
          { class: 'facts' },
          h('dt', null, 'logit before'),
          h('dd', null, fmt(check.before, 4)),
          h('dt', null, `after adding ${fmt(check.delta)}`),
          h('dd', null, row ? fmt(row.after, 4) : '–'),
          h('dt', null, 'attribution W·t'),
          h('dd', null, row ? fmt(row.attribution) : '–'),
        ),
      );
    });
  });
  fill(
    section,
    h('h3', null, 'Intervention check'),
    h(
      'p',
      { class: 'muted' },
      'Adds to this neuron on a blank image and asks whether the zero-shot logit of the text rises.',
    ),
    form,
    out,
  );
  form.requestSubmit();
}

function drawSearch(section: HTMLElement, id: number, onStart: (stop: () => void) => void): void {
  const steps = h('input', { name: 'steps', type: 'number', min: 1, max: 2000, value: 60 });
  const length = h('input', { name: 'length', type: 'number', min: 1, max: 16, value: 6 });
  const start = h('button', { type: 'submit' }, 'Search');
  const cancel = h('button', { type: 'button', class: 'secondary', disabled: true }, 'Cancel');
  const status = h('div', { class: 'search-status', id: 'search-status', 'aria-live': 'polite' });
  const form = h(
    'form',
    { class: 'controls' },
    field('Steps', steps),
    field('Tokens', length),
    start,
    cancel,
  );
  /** Stops following the current search (closes its event stream or its polling). */
  let unfollow: (() => void) | undefined;
  let jobId: string | undefined;
  const stop = () => {
    unfollow?.();
    unfollow = undefined;
  };
  onStart(stop);

  cancel.addEventListener('click', () => {
    if (jobId === undefined) return;
    cancel.disabled = true;
    clearError();
    call(api.DELETE('/v1/jobs/{id}', { params: { path: { id: jobId } } })).catch((error: unknown) => {
      cancel.disabled = false;
      showError(error);
    });
  });

  const finish = () => {
    stop();
    start.disabled = false;
    cancel.disabled = true;
  };
  const ended = (job: Partial<Job>, end: Ending) => {
    finish();
    showEnd(status, job, end);
  };

  /** Follows the job over Server-Sent Events. */
  const stream = (id: string, curve: number[]) => {
    const source = new EventSource(jobEventsUrl(id));
    let active = true;
    unfollow = () => {
      active = false;
      source.close();
    };
    source.addEventListener('progress', (message) => {
      const progress = JSON.parse((message as MessageEvent<string>).data) as Progress;
      if (progress.bestScore !== null) curve.push(progress.bestScore);
      showProgress(status, progress, curve);
    });
    for (const end of ENDINGS) {
      source.addEventListener(end, (message) =>
        ended(JSON.parse((message as MessageEvent<string>).data), end),
      );
    }
    source.addEventListener('error', () => {
      // The stream failed or broke before a final event: read the job instead (which also brings
      // the API's message when there is an error to show).
      if (!active) return;
      active = false;
      source.close();
      poll(id, curve);
    });
  };

  /** Follows the job by reading it a few times a second (what a page with an API key must do). */
  const poll = (id: string, curve: number[]) => {
    let timer = 0;
    let seen = -1;
    let active = true;
    unfollow = () => {
      active = false;
      window.clearTimeout(timer);
    };
    const tick = () => {
      call(api.GET('/v1/jobs/{id}', { params: { path: { id } } }))
        // The job this search submitted is a max-text job: its progress and result have that shape.
        .then((any) => any as Job)
        .then((job) => {
          if (!active) return;
          if (isEnding(job.state)) return ended(job, job.state);
          if (job.progress.steps !== seen) {
            seen = job.progress.steps;
            if (job.progress.bestScore !== null) curve.push(job.progress.bestScore);
            showProgress(status, { ...job.progress, id: job.id, state: job.state }, curve);
          }
          timer = window.setTimeout(tick, 400);
        })
        .catch((error: unknown) => {
          if (!active) return;
          finish();
          showError(error);
        });
    };
    tick();
  };

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    stop();
    clearError();
    start.disabled = true;
    const body = { neuron: id, steps: Number(steps.value) || 60, length: Number(length.value) || 6 };
    call(api.POST('/v1/search/max-text', { body }))
      .then((queued) => {
        jobId = queued.jobId;
        status.dataset.state = 'queued';
        fill(status, h('p', null, queued.cached ? 'Cached result…' : 'Queued…'));
        cancel.disabled = false;
        if (apiKey()) poll(queued.jobId, []);
        else stream(queued.jobId, []);
      })
      .catch((error: unknown) => {
        start.disabled = false;
        showError(error);
      });
  });

  fill(
    section,
    h('h3', null, 'Maximal text'),
    h(
      'p',
      { class: 'muted' },
      'Hill climbing over tokens for the text that excites this neuron most; the best text improves live.',
    ),
    form,
    status,
  );
}

function showProgress(status: HTMLElement, progress: Progress, curve: number[]): void {
  status.dataset.state = progress.state;
  fill(
    status,
    h('progress', { max: progress.totalSteps || 1, value: progress.steps }),
    h(
      'p',
      { class: 'muted' },
      `step ${progress.steps} of ${progress.totalSteps} · ${progress.evaluations} texts scored`,
    ),
    progress.bestText !== null
      ? h(
          'p',
          { class: 'best' },
          h('q', { id: 'search-best' }, progress.bestText),
          ` ${progress.bestScore !== null ? fmt(progress.bestScore, 4) : ''}`,
        )
      : null,
    line(curve, 'best score so far'),
  );
}

function showEnd(status: HTMLElement, job: Partial<Job>, end: Ending): void {
  status.dataset.state = end;
  const result = job.result;
  if (end === 'failed') {
    showError(new Error(`the search failed: ${job.error ?? 'unknown error'}`));
    fill(status, h('p', null, 'The search failed.'));
    return;
  }
  if (!result) {
    // A cancelled search keeps no result; its progress holds the best text it had found.
    const best = job.progress?.bestText;
    fill(
      status,
      best
        ? h(
            'p',
            null,
            `The search was ${end} after ${job.progress?.steps ?? 0} steps; its best text then: `,
            h('q', null, best),
          )
        : h('p', null, `The search was ${end} before it found a text.`),
    );
    return;
  }
  fill(
    status,
    h(
      'div',
      { id: 'search-result' },
      h(
        'p',
        { class: 'best' },
        h('q', null, result.text),
        ` ${fmt(result.score, 4)} `,
        h('a', { href: `#/prompt/${encodeURIComponent(result.text)}` }, 'its neurons'),
      ),
      h(
        'p',
        { class: 'muted' },
        `${end === 'cancelled' ? 'cancelled; ' : ''}${result.steps} steps, ${result.evaluations} texts scored, ` +
          `${result.restartsUsed} restarts, stopped by ${result.stopReason}, ${Math.round(result.elapsedMs)} ms` +
          (job.cached ? ' (cached)' : ''),
      ),
      line(result.curve, 'best score by step'),
      h('h4', null, 'Best texts'),
      scoreBars(result.top.map((item) => ({ name: item.text, value: item.score }))),
    ),
  );
}
