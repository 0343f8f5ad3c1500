/**
 * The whole-model labelling job: labels every neuron of the model from a collection (the probe by
 * default) — its top images, top words, top texts, automatic labels with their scores and evidence
 * (soft-WPMI, service.ts), the multimodality measure and, where a finished maximal-text search of
 * the neuron is cached, that text — and writes the result as the automatic layer of the served
 * catalogue (catalogue.ts: DATA_DIR/neuron-labels/<model>/automatic.json).
 *
 * A job of the one job API (src/jobs/), in the manner of collection builds (collections/build-job.ts):
 * a `neuron-labels` job (the parent) plans shards of NEURON_LABEL_SHARD neurons (plan.json in
 * jobs/<job id>/ beside the catalogue), queues one `neuron-labels-shard` job per shard (with Redis:
 * any worker of the collections lane takes them; in process nobody else would, so it queues none),
 * and works shards itself. A shard is claimed by a lock file (stale when its holder is gone),
 * computed, and written as shard-<i>.json; when every shard is written, the parent merges them into
 * automatic.json and removes the job's folder. Progress counts neurons (written shards plus what
 * the claims in flight report).
 *
 * Resumable: the plan and the written shards stay on disk. A shutdown hands the job back (its
 * shards stop between neurons, claims are released); with Redis a worker takes the job again, and
 * without it the next start resubmits every plan it finds (resumeAll) under the same id: written
 * shards are not computed again. A cancel (DELETE /v1/jobs/{id}) removes the folder: shards in
 * flight stop at their next neuron, and the served catalogue keeps its previous automatic layer.
 * The collection must not change while it runs: a shard computed on another image count fails the
 * job, naming it.
 */
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { FileLock, isStale, readHolder, removeJobDir } from '../collections/build-job.js';
import type { CollectionService } from '../collections/service.js';
import { writeAtomic, type CollectionManifest } from '../collections/store.js';
import { conflict } from '../errors.js';
import {
  JobHandedBack,
  type JobContext,
  type JobOutcome,
  type KindProcessor,
  type SpawnedJob,
} from '../jobs/types.js';
import { RunningJobs } from '../jobs/running.js';
import type { WordService } from '../words/service.js';
import type { WordIndex } from '../words/word-index.js';
import {
  AUTOMATIC_FORMAT,
  type AutomaticCatalogue,
  type AutomaticEntry,
  type LabelCatalogue,
  type MaxTextEvidence,
} from './catalogue.js';
import { namesIn, PROBE_COLLECTION, type CollectionView, type EvidenceService } from './service.js';

/** Neurons per shard (NEURON_LABEL_SHARD, 1–100,000, default 64). */
export const DEFAULT_LABEL_SHARD = 64;
/** Entries per side kept for each neuron. */
export const ENTRY_EXAMPLES = 5;
const REPORT_EVERY_MS = 250;
const CHECK_EVERY_MS = 100;
const WAIT_MS = 100;
const HEARTBEAT_MS = 5000;
const WORKER = `${process.pid}@${hostname()}`;

export interface LabelJobData {
  kind: 'neuron-labels';
  collection: string;
  /** One labelling of a collection is queued or running at a time. */
  hash: string;
}

export interface LabelShardJobData {
  kind: 'neuron-labels-shard';
  collection: string;
  /** The labelling (parent) job. */
  job: string;
  shard: number;
  hash: string;
}

export interface LabelProgress {
  collection: string;
  /** Neurons labelled: written shards, plus what shards in flight report. */
  done: number;
  total: number;
  shards: { total: number; written: number; running: number };
  /** Shards found already written when this run (or its resumption) started. */
  resumedShards: number;
  neuronsPerSecond: number | null;
}

export interface LabelResult {
  collection: string;
  images: number;
  neurons: number;
  /** Neurons with an automatic label. */
  labelled: number;
  multimodalShare: number | null;
  /** Neurons whose evidence carries a cached maximal text. */
  maxTexts: number;
  resumedShards: number;
  /** Processes that computed shards (pid@host). */
  workers: string[];
}

export interface LabelShardProgress {
  job: string;
  shard: number;
  done: number;
  total: number;
}

export interface LabelShardResult {
  computed: boolean;
  done: number;
}

export function labelShardSizeOf(env: Record<string, string | undefined> = process.env): number {
  const raw = env.NEURON_LABEL_SHARD?.trim();
  if (!raw) return DEFAULT_LABEL_SHARD;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > 100_000) {
    throw new RangeError(`NEURON_LABEL_SHARD must be an integer from 1 to 100000, got "${raw}"`);
  }
  return value;
}

export function labelJobData(collection: string = PROBE_COLLECTION): LabelJobData {
  return { kind: 'neuron-labels', collection, hash: `neuron-labels:${collection}` };
}

export function labelShardJobId(jobId: string, shard: number): string {
  return `labelshard-${jobId.replace(/^labels-/, '')}-${shard}`;
}

export interface LabelJobDeps {
  evidence: EvidenceService;
  collections: CollectionService;
  words: WordService;
  catalogue: LabelCatalogue;
  model: { sha256: string; neuronCount: number };
  /** The neuron's cached maximal text, if a finished search is cached. */
  maxText: (neuron: number) => Promise<MaxTextEvidence | null>;
  shardSize: number;
  log?: { warn(object: object, message: string): void };
}

interface Plan {
  jobId: string;
  collection: string;
  /** The collection's image count the labels are computed on. */
  images: number;
  shardSize: number;
  neurons: number;
  shards: number;
}

interface ShardFile {
  computedBy: string;
  images: number;
  entries: AutomaticEntry[];
}

/** Thrown inside a shard that stops (shutdown, cancel): nothing of it is written. */
class LabellingStopped extends Error {}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}

export class NeuronLabelJobs {
  /** The labelling jobs and shards this process runs (stop() hands them back). */
  private readonly processing = new RunningJobs();

  constructor(private readonly deps: LabelJobDeps) {}

  get jobsDir(): string {
    return path.join(this.deps.catalogue.dir, 'jobs');
  }

  private jobDir(jobId: string): string {
    return path.join(this.jobsDir, jobId);
  }

  private shardFile(jobId: string, shard: number, suffix: 'json' | 'claim'): string {
    return path.join(this.jobDir(jobId), `shard-${shard}.${suffix}`);
  }

  private async readPlan(jobId: string): Promise<Plan | undefined> {
    try {
      return JSON.parse(await readFile(path.join(this.jobDir(jobId), 'plan.json'), 'utf8')) as Plan;
    } catch {
      return undefined;
    }
  }

  /** Plans left on disk by runs that did not finish (a restart without Redis resubmits them). */
  async unfinished(): Promise<Plan[]> {
    const names = await readdir(this.jobsDir).catch(() => [] as string[]);
    const plans = await Promise.all(names.map((name) => this.readPlan(name)));
    return plans.filter((plan): plan is Plan => plan !== undefined);
  }

  /** The stop hook of a cancelled labelling: its folder goes (shards in flight stop). */
  async stopped(jobId: string): Promise<void> {
    await removeJobDir(this.jobDir(jobId));
  }

  /** Stops this process's labelling work (shutdown): it hands back, to resume. */
  async stop(): Promise<void> {
    await this.processing.stop();
  }

  readonly jobProcessor: KindProcessor<'neuron-labels'> = (data, context) =>
    this.processing.track(this.label(data.collection, context));

  readonly shardProcessor: KindProcessor<'neuron-labels-shard'> = (data, context) =>
    this.processing.track(this.shard(data.job, data.shard, context));

  /** The entry of one neuron on a collection's view. */
  async entryOf(view: CollectionView, index: WordIndex | undefined, neuron: number): Promise<AutomaticEntry> {
    const { evidence, collections } = this.deps;
    const maxText = await this.deps.maxText(neuron);
    const labels = evidence.labels(view, index, neuron).dissect.map((label) => ({
      ...label,
      evidence: { ...label.evidence, inMaxText: maxText ? namesIn(label.concept, maxText.text) : null },
    }));
    const { top } = await collections.topImages(neuron, view.manifest.id, {
      k: ENTRY_EXAMPLES,
      by: 'mean',
      bins: 0,
      perBin: 1,
    });
    const measure = evidence.measure(view, index, neuron);
    return {
      id: neuron,
      label: labels[0]?.concept ?? null,
      score: labels[0]?.score ?? null,
      labels,
      topImages: top.map(({ imageId, name, category, value }) => ({ imageId, name, category, value })),
      topWords: index
        ? index.neuronWords(neuron, ENTRY_EXAMPLES).top.map(({ word, activation }) => ({ word, activation }))
        : [],
      topTexts: view.texts.top(neuron, ENTRY_EXAMPLES),
      multimodality: measure && {
        score: measure.score,
        multimodal: measure.multimodal,
        topCategory: measure.topCategory,
        speakingRank: measure.speakingRank,
        readingRank: measure.readingRank,
      },
      maxText,
    };
  }

  private async wordIndex(): Promise<WordIndex | undefined> {
    try {
      return (await this.deps.words.require()).index;
    } catch {
      // A worker process that started before a server built the index: load it from DATA_DIR or
      // the shared cache now; without one, the reading side is left empty.
      if (!(await this.deps.words.load().catch(() => false))) return undefined;
      return (await this.deps.words.require().catch(() => undefined))?.index;
    }
  }

  /** The shards with a written file. */
  private async written(plan: Plan): Promise<boolean[]> {
    return Promise.all(
      Array.from({ length: plan.shards }, (_, shard) => exists(this.shardFile(plan.jobId, shard, 'json'))),
    );
  }

  private async label(
    collection: string,
    context: JobContext<LabelProgress>,
  ): Promise<JobOutcome<LabelResult>> {
    const jobId = context.id ?? 'labels-unknown';
    const handBack = () => this.processing.handingBack(context);
    // A cancel may come while the plan is being written (after the stop hook removed the folder):
    // whatever this run leaves goes too, so that no later start resumes it.
    const cancelled = async (): Promise<JobOutcome<LabelResult>> => {
      await this.stopped(jobId);
      return { cancelled: true };
    };
    if (await context.isCancelled()) return cancelled();
    const manifest = await this.deps.collections.get(collection);
    if (manifest.images === 0) {
      throw conflict(`collection "${collection}" has no indexed images yet (build: ${manifest.build.state})`);
    }
    const C = this.deps.model.neuronCount;
    let plan = await this.readPlan(jobId);
    if (!plan) {
      plan = {
        jobId,
        collection,
        images: manifest.images,
        shardSize: this.deps.shardSize,
        neurons: C,
        shards: Math.ceil(C / this.deps.shardSize),
      };
      await mkdir(this.jobDir(jobId), { recursive: true });
      await writeAtomic(path.join(this.jobDir(jobId), 'plan.json'), JSON.stringify(plan));
    }
    const atStart = await this.written(plan);
    const resumedShards = atStart.filter(Boolean).length;
    if (context.spawn) {
      const jobs: SpawnedJob[] = [];
      atStart.forEach((done, shard) => {
        if (!done) {
          jobs.push({
            id: labelShardJobId(jobId, shard),
            data: { kind: 'neuron-labels-shard', collection, job: jobId, shard, hash: `${jobId}:${shard}` },
          });
        }
      });
      await context.spawn(jobs);
    }
    const started = Date.now();
    const doneAtStart = atStart.reduce(
      (sum, done, shard) => sum + (done ? this.shardCount(plan!, shard) : 0),
      0,
    );
    let lastReport = 0;
    const report = async (force = false) => {
      if (!force && Date.now() - lastReport < REPORT_EVERY_MS) return;
      lastReport = Date.now();
      await context.reportProgress(await this.progress(plan!, resumedShards, doneAtStart, started));
    };
    const stop = async () => handBack() || (await context.isCancelled());
    try {
      for (;;) {
        if (handBack()) throw new JobHandedBack();
        if (await context.isCancelled()) return cancelled();
        const written = await this.written(plan);
        if (written.every(Boolean)) break;
        let computed = false;
        for (let shard = 0; shard < plan.shards && !computed; shard++) {
          if (!written[shard]) computed = await this.computeIfFree(plan, shard, stop, () => report());
        }
        await report();
        if (!computed) await sleep(WAIT_MS); // the rest is being computed elsewhere
      }
    } catch (error) {
      if (error instanceof LabellingStopped) {
        if (handBack()) throw new JobHandedBack();
        return cancelled();
      }
      throw error;
    }
    await report(true);
    if (await context.isCancelled()) return cancelled();
    return { cancelled: false, result: await this.merge(plan, resumedShards) };
  }

  private shardCount(plan: Plan, shard: number): number {
    return Math.min(plan.neurons, (shard + 1) * plan.shardSize) - shard * plan.shardSize;
  }

  private async progress(
    plan: Plan,
    resumedShards: number,
    doneAtStart: number,
    started: number,
  ): Promise<LabelProgress> {
    let done = 0;
    let written = 0;
    let running = 0;
    for (let shard = 0; shard < plan.shards; shard++) {
      if (await exists(this.shardFile(plan.jobId, shard, 'json'))) {
        written++;
        done += this.shardCount(plan, shard);
        continue;
      }
      const claim = await readHolder(this.shardFile(plan.jobId, shard, 'claim'));
      if (claim && !isStale(claim)) {
        running++;
        done += claim.owner?.done ?? 0;
      }
    }
    const seconds = (Date.now() - started) / 1000;
    return {
      collection: plan.collection,
      done,
      total: plan.neurons,
      shards: { total: plan.shards, written, running },
      resumedShards,
      neuronsPerSecond: seconds > 0 && done > doneAtStart ? (done - doneAtStart) / seconds : null,
    };
  }

  /** Computes a shard unless it is claimed or written; true when computed here. */
  private async computeIfFree(
    plan: Plan,
    shard: number,
    stop: () => Promise<boolean>,
    onNeuron: () => Promise<void>,
  ): Promise<boolean> {
    const out = this.shardFile(plan.jobId, shard, 'json');
    if (await exists(out)) return false;
    if (!(await exists(this.jobDir(plan.jobId)))) return false;
    const claim = new FileLock(this.shardFile(plan.jobId, shard, 'claim'), { jobId: plan.jobId, done: 0 });
    if (!(await claim.tryTake().catch(() => false))) return false;
    const heartbeat = setInterval(() => void claim.refresh(), HEARTBEAT_MS);
    heartbeat.unref();
    try {
      if (await exists(out)) return false;
      const manifest: CollectionManifest = await this.deps.collections.get(plan.collection);
      if (manifest.images !== plan.images) {
        throw conflict(
          `collection "${plan.collection}" changed while its neurons were labelled (${plan.images} images, now ${manifest.images}): submit the labelling again`,
        );
      }
      const view = await this.deps.evidence.view(manifest);
      const index = await this.wordIndex();
      const entries: AutomaticEntry[] = [];
      const from = shard * plan.shardSize;
      const to = Math.min(plan.neurons, from + plan.shardSize);
      let lastCheck = 0;
      for (let neuron = from; neuron < to; neuron++) {
        // Between neurons, at most every CHECK_EVERY_MS (a neuron takes milliseconds; these are
        // file operations): stopped when this process shuts down, the job is cancelled, or its
        // folder is gone; the claim says how far it got, for progress.
        if (Date.now() - lastCheck >= CHECK_EVERY_MS) {
          lastCheck = Date.now();
          if ((await stop()) || !(await exists(this.jobDir(plan.jobId)))) throw new LabellingStopped();
          await claim.refresh(entries.length);
          await onNeuron();
        }
        entries.push(await this.entryOf(view, index, neuron));
      }
      const file: ShardFile = { computedBy: WORKER, images: manifest.images, entries };
      if (!(await exists(this.jobDir(plan.jobId)))) throw new LabellingStopped();
      await writeAtomic(out, JSON.stringify(file));
      return true;
    } finally {
      clearInterval(heartbeat);
      await claim.release();
    }
  }

  /** A shard job: computes its shard unless another worker (or the parent) did or does. */
  private async shard(
    jobId: string,
    shard: number,
    context: JobContext<LabelShardProgress>,
  ): Promise<JobOutcome<LabelShardResult>> {
    const plan = await this.readPlan(jobId);
    if (!plan || shard >= plan.shards) return { cancelled: false, result: { computed: false, done: 0 } };
    const stop = async () => this.processing.handingBack(context) || (await context.isCancelled());
    try {
      const computed = await this.computeIfFree(plan, shard, stop, async () => undefined);
      return { cancelled: false, result: { computed, done: computed ? this.shardCount(plan, shard) : 0 } };
    } catch (error) {
      // Stopped (shutdown, cancel): the parent takes the shard over.
      if (error instanceof LabellingStopped)
        return { cancelled: false, result: { computed: false, done: 0 } };
      throw error;
    }
  }

  /** Every shard merged into the automatic catalogue; the job's folder goes. */
  private async merge(plan: Plan, resumedShards: number): Promise<LabelResult> {
    const neurons: AutomaticEntry[] = [];
    const workers = new Set<string>();
    for (let shard = 0; shard < plan.shards; shard++) {
      const file = JSON.parse(await readFile(this.shardFile(plan.jobId, shard, 'json'), 'utf8')) as ShardFile;
      workers.add(file.computedBy);
      neurons.push(...file.entries);
    }
    neurons.sort((a, b) => a.id - b.id);
    const measured = neurons.filter((entry) => entry.multimodality !== null);
    const multimodalShare =
      measured.length > 0
        ? measured.filter((entry) => entry.multimodality!.multimodal).length / measured.length
        : null;
    const catalogue: AutomaticCatalogue = {
      format: AUTOMATIC_FORMAT,
      model: this.deps.model.sha256,
      collection: plan.collection,
      images: plan.images,
      jobId: plan.jobId,
      finishedAt: new Date().toISOString(),
      multimodalShare,
      maxTexts: neurons.filter((entry) => entry.maxText !== null).length,
      neurons,
    };
    await this.deps.catalogue.writeAutomatic(catalogue);
    await removeJobDir(this.jobDir(plan.jobId));
    return {
      collection: plan.collection,
      images: plan.images,
      neurons: neurons.length,
      labelled: neurons.filter((entry) => entry.label !== null).length,
      multimodalShare,
      maxTexts: catalogue.maxTexts,
      resumedShards,
      workers: [...workers].sort(),
    };
  }
}
