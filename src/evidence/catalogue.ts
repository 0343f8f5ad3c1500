/**
 * The catalogue the service serves: every neuron's labels from three sources, kept side by side.
 *
 * - `published`: the model directory's neurons.json (for an RN50-x4 export, the article's data the
 *   exporter carries: the named neurons and the ~190 hand labels);
 * - `user`: labels clients set (PUT /v1/neurons/{id}/label), each with its owner;
 * - `automatic`: the whole-model labelling job's (label-job.ts), from a collection.
 *
 * The served label follows published > user > automatic: an automatic label never replaces a
 * published or user one, and a user label never replaces a published one; every label is kept and
 * shown with its source. User labels and the automatic catalogue are files under
 * DATA_DIR/neuron-labels/<model sha256 prefix>/ (user.json, automatic.json), written atomically
 * (user.json under a lock), and re-read when their mtime changes: replicas on one volume share them.
 */
import { mkdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { FileLock } from '../collections/build-job.js';
import { writeAtomic } from '../collections/store.js';
import type { NeuronCatalogue, NeuronEntry } from '../attribution/neuron-catalogue.js';
import { badRequest, HttpError, notFound } from '../errors.js';
import type { Multimodality } from './measure.js';
import type { AutoLabel } from './service.js';

export type LabelSource = 'published' | 'user' | 'automatic';
/** The served label's order of precedence. */
export const LABEL_PRECEDENCE: readonly LabelSource[] = ['published', 'user', 'automatic'];
/** Longest user label. */
export const MAX_LABEL_LENGTH = 100;
export const AUTOMATIC_FORMAT = 'neuron-labels/1';

/** A user's label of a neuron. */
export interface UserLabel {
  label: string;
  owner: string;
  updatedAt: string;
}

/** The maximal text of a neuron, where a finished search is cached (src/search/). */
export interface MaxTextEvidence {
  text: string;
  score: number;
  steps: number;
}

/** An automatic label with its evidence (inMaxText set), as the labelling job stores it. */
export type StoredLabel = AutoLabel;

/** One neuron of the automatic catalogue: its label with score, and the evidence of its three sides. */
export interface AutomaticEntry {
  id: number;
  label: string | null;
  score: number | null;
  labels: StoredLabel[];
  topImages: { imageId: number; name: string; category: string | null; value: number }[];
  topWords: { word: string; activation: number }[];
  topTexts: { text: string; attribution: number }[];
  multimodality: Pick<
    Multimodality,
    'score' | 'multimodal' | 'topCategory' | 'speakingRank' | 'readingRank'
  > | null;
  maxText: MaxTextEvidence | null;
}

/** automatic.json: the labelling job's result, the automatic layer of the catalogue. */
export interface AutomaticCatalogue {
  format: typeof AUTOMATIC_FORMAT;
  model: string;
  collection: string;
  images: number;
  jobId: string;
  finishedAt: string;
  /** Share of neurons the multimodality measure calls multimodal (null: no categories). */
  multimodalShare: number | null;
  /** Neurons whose entry carries a cached maximal text. */
  maxTexts: number;
  neurons: AutomaticEntry[];
}

/** One label of a neuron, with its source. */
export interface SourcedLabel {
  label: string;
  source: LabelSource;
  score: number | null;
  /** published: the catalogue's own source text; user: the owner; automatic: the collection. */
  from: string | null;
  updatedAt: string | null;
}

/**
 * A neuron in the served catalogue: the published entry's fields (family, source, score, topWords,
 * handLabel, credit, as neurons.json gives them), with `label` the served label by precedence.
 */
export interface ServedEntry extends Omit<NeuronEntry, 'label'> {
  /** The label by precedence (published > user > automatic), null when no source has one. */
  label: string | null;
  labelSource: LabelSource | null;
  labels: SourcedLabel[];
  /** The labelling job's entry, when the automatic catalogue has one. */
  automatic?: AutomaticEntry;
}

async function mtimeOf(file: string): Promise<number | null> {
  try {
    return (await stat(file)).mtimeMs;
  } catch {
    return null;
  }
}

/** The label a client sends, trimmed; a 400 naming what is allowed otherwise. */
export function checkLabel(raw: string): string {
  const label = raw.trim().replace(/\s+/g, ' ');
  if (label.length === 0) throw badRequest('label must not be empty (1 to 100 characters, not only spaces)');
  if (label.length > MAX_LABEL_LENGTH)
    throw badRequest(`label must be at most ${MAX_LABEL_LENGTH} characters, got ${label.length}`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(label)) throw badRequest('label must not hold control characters');
  return label;
}

export class LabelCatalogue {
  readonly dir: string;
  private user = new Map<number, UserLabel>();
  private userMtime: number | null = null;
  private automaticCatalogue: AutomaticCatalogue | null = null;
  private automaticMtime: number | null = null;
  private generation = 0;

  constructor(
    dataDir: string,
    private readonly model: { sha256: string; neuronCount: number },
    private readonly published: NeuronCatalogue,
  ) {
    this.dir = path.join(dataDir, 'neuron-labels', model.sha256.slice(0, 16));
  }

  get userFile(): string {
    return path.join(this.dir, 'user.json');
  }

  get automaticFile(): string {
    return path.join(this.dir, 'automatic.json');
  }

  /** Changes whenever either file is re-read (for memos of the served labels). */
  get version(): number {
    return this.generation;
  }

  /** Re-reads the files another replica (or the job) may have rewritten. */
  async refresh(): Promise<void> {
    const [userMtime, automaticMtime] = await Promise.all([
      mtimeOf(this.userFile),
      mtimeOf(this.automaticFile),
    ]);
    if (userMtime !== this.userMtime) {
      this.user = await this.readUser();
      this.userMtime = userMtime;
      this.generation++;
    }
    if (automaticMtime !== this.automaticMtime) {
      this.automaticCatalogue = await this.readAutomatic();
      this.automaticMtime = automaticMtime;
      this.generation++;
    }
  }

  private async readUser(): Promise<Map<number, UserLabel>> {
    try {
      const json = JSON.parse(await readFile(this.userFile, 'utf8')) as Record<string, UserLabel>;
      return new Map(Object.entries(json).map(([id, label]) => [Number(id), label]));
    } catch {
      return new Map();
    }
  }

  private async readAutomatic(): Promise<AutomaticCatalogue | null> {
    try {
      const json = JSON.parse(await readFile(this.automaticFile, 'utf8')) as AutomaticCatalogue;
      return json.format === AUTOMATIC_FORMAT && json.model === this.model.sha256 ? json : null;
    } catch {
      return null;
    }
  }

  /** The automatic catalogue as last read (call refresh first). */
  get automatic(): AutomaticCatalogue | null {
    return this.automaticCatalogue;
  }

  get userLabels(): ReadonlyMap<number, UserLabel> {
    return this.user;
  }

  /** Writes the labelling job's result (atomically; replicas see it at their next refresh). */
  async writeAutomatic(catalogue: AutomaticCatalogue): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await writeAtomic(this.automaticFile, JSON.stringify(catalogue));
    await this.refresh();
  }

  private checkNeuron(neuron: number): void {
    const count = this.model.neuronCount;
    if (!Number.isInteger(neuron) || neuron < 0 || neuron >= count)
      throw badRequest(`neuron ${neuron} is out of range (0 to ${count - 1})`);
  }

  /** user.json read, changed and written under its lock (one writer at a time across replicas). */
  private async updateUser<T>(change: (labels: Map<number, UserLabel>) => T): Promise<T> {
    await mkdir(this.dir, { recursive: true });
    const lock = new FileLock(path.join(this.dir, 'user.lock'));
    while (!(await lock.tryTake()))
      await new Promise((resolve) => setTimeout(resolve, 10 + Math.random() * 20));
    try {
      const labels = await this.readUser();
      const out = change(labels);
      const json = Object.fromEntries(
        [...labels].sort(([a], [b]) => a - b).map(([id, label]) => [id, label]),
      );
      await writeAtomic(this.userFile, JSON.stringify(json, null, 1));
      return out;
    } finally {
      await lock.release();
      await this.refresh();
    }
  }

  /**
   * Sets a neuron's user label for `client`. A label another client set is theirs: only they (or
   * an admin key) may replace it (403).
   */
  async setUserLabel(
    neuron: number,
    raw: string,
    client: { owner: string; admin: boolean },
  ): Promise<ServedEntry> {
    this.checkNeuron(neuron);
    const label = checkLabel(raw);
    await this.updateUser((labels) => {
      const current = labels.get(neuron);
      if (current && current.owner !== client.owner && !client.admin) {
        throw new HttpError(
          403,
          `neuron ${neuron}'s user label was set by another client: only they (or an admin key) may change it`,
        );
      }
      labels.set(neuron, { label, owner: client.owner, updatedAt: new Date().toISOString() });
    });
    return this.entry(neuron);
  }

  /** Removes a neuron's user label (its owner or an admin key); 404 when it has none. */
  async deleteUserLabel(neuron: number, client: { owner: string; admin: boolean }): Promise<ServedEntry> {
    this.checkNeuron(neuron);
    await this.updateUser((labels) => {
      const current = labels.get(neuron);
      if (!current) throw notFound(`neuron ${neuron} has no user label`);
      if (current.owner !== client.owner && !client.admin) {
        throw new HttpError(
          403,
          `neuron ${neuron}'s user label was set by another client: only they (or an admin key) may delete it`,
        );
      }
      labels.delete(neuron);
    });
    return this.entry(neuron);
  }

  /** A neuron's labels from every source, best first by precedence (call refresh first). */
  labelsOf(neuron: number): SourcedLabel[] {
    const out: SourcedLabel[] = [];
    const published = this.published.get(neuron);
    if (published?.label) {
      out.push({
        label: published.label,
        source: 'published',
        score: published.score ?? null,
        from: published.source ?? null,
        updatedAt: null,
      });
    }
    const user = this.user.get(neuron);
    if (user)
      out.push({
        label: user.label,
        source: 'user',
        score: null,
        from: user.owner,
        updatedAt: user.updatedAt,
      });
    const automatic = this.automaticCatalogue?.neurons[neuron];
    if (automatic?.label) {
      out.push({
        label: automatic.label,
        source: 'automatic',
        score: automatic.score,
        from: this.automaticCatalogue!.collection,
        updatedAt: this.automaticCatalogue!.finishedAt,
      });
    }
    return out;
  }

  /** The served label of a neuron (by precedence), if any source has one (call refresh first). */
  served(neuron: number): SourcedLabel | undefined {
    return this.labelsOf(neuron)[0];
  }

  /** True when some source has an entry for the neuron (call refresh first). */
  has(neuron: number): boolean {
    return (
      this.published.get(neuron) !== undefined ||
      this.user.has(neuron) ||
      this.automaticCatalogue?.neurons[neuron] !== undefined
    );
  }

  /** A neuron's entry in the served catalogue (re-reading the files when they changed). */
  async entry(neuron: number): Promise<ServedEntry> {
    this.checkNeuron(neuron);
    await this.refresh();
    const labels = this.labelsOf(neuron);
    const automatic = this.automaticCatalogue?.neurons[neuron];
    return {
      ...this.published.get(neuron),
      id: neuron,
      label: labels[0]?.label ?? null,
      labelSource: labels[0]?.source ?? null,
      labels,
      ...(automatic ? { automatic } : {}),
    };
  }

  /** Counts of labels per source (call refresh first). */
  counts(): Record<LabelSource, number> {
    return {
      published: this.published.list().filter((entry) => entry.label).length,
      user: this.user.size,
      automatic: this.automaticCatalogue?.neurons.filter((entry) => entry.label).length ?? 0,
    };
  }
}
