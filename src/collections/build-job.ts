/**
 * Building a collection is a job of the one job API (src/jobs/): a `collection-build` job (the
 * build, or parent) and `collection-shard` jobs (its shards), processed by any worker of the
 * collections lane: the server's in-process worker and every `npm run worker` process (they share
 * DATA_DIR, where the collection lives, and Redis, where the jobs are).
 *
 * The build plans its shards: contiguous ranges of COLLECTION_SHARD pending uploads (plan.json in
 * the collection's build/<job id>/ folder), queues one shard job per shard (with Redis: any worker
 * takes them; in process nobody else would, so it queues none), and then works shards itself. A
 * shard is taken by creating its claim file (O_EXCL; refreshed after every batch, so a claim whose
 * process died is taken over: at once on the same host, after LOCK_STALE_MS elsewhere), computed
 * (builder.ts: pipelined decode, trunk, head), written as a shard file, and committed in order under
 * the collection's commit lock by whoever finishes one (builder.ts commitShard: rows at their
 * positions, then the manifest): the manifest counts only complete shards, a contiguous prefix.
 * When every shard is committed, the build plans the uploads that arrived meanwhile (they join it),
 * or completes. Its progress is the manifest's counts plus the shards in flight (their claims hold
 * their count), with images/s.
 *
 * One build per collection at a time: the build holds the collection's build/parent.lock (with its
 * job id); a second build of the same collection (another replica without Redis) joins the first.
 * Stops: a cancel (DELETE /v1/jobs/{id}) runs `stopped` (the stop hook of the kind): the manifest
 * says cancelled, the uploads not yet committed are dropped (what was committed stays), the plan
 * and shard files go, and every process computing a shard of it stops at its next batch. A
 * shutdown (SIGTERM, app.close) hands the build back: its manifest says "queued", and the build
 * resumes where it stopped (the next start's resumeAll, or with Redis, the worker that takes the
 * handed-back job): committed shards stay, shard files already computed are committed, claims are
 * released.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import type { BoundedDecode } from '../clip/encoders.js';
import type { PreprocessSpec } from '../clip/image.js';
import {
  JobHandedBack,
  type BuildProgress,
  type BuildResult,
  type JobContext,
  type JobOutcome,
  type KindProcessor,
  type SpawnedJob,
} from '../jobs/types.js';
import { RunningJobs } from '../jobs/running.js';
import {
  BuildAborted,
  commitShard,
  computeShard,
  decodeShard,
  encodeShard,
  indexedShas,
  type CollectionModel,
} from './builder.js';
import {
  emptyBuild,
  LOCK_STALE_MS,
  writeAtomic,
  type CollectionManifest,
  type CollectionStore,
  type PendingEntry,
} from './store.js';

/** Uploads per shard (COLLECTION_SHARD, 1–100,000, default 512). */
export const DEFAULT_SHARD_SIZE = 512;
const REPORT_EVERY_MS = 250;
const WAIT_MS = 100;
const HEARTBEAT_MS = 5000;

export function shardSizeOf(env: Record<string, string | undefined> = process.env): number {
  const raw = env.COLLECTION_SHARD?.trim();
  if (!raw) return DEFAULT_SHARD_SIZE;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > 100_000) {
    throw new RangeError(`COLLECTION_SHARD must be an integer from 1 to 100000, got "${raw}"`);
  }
  return value;
}

/** The hash that names a collection's build: identical submissions share one job. */
export function buildHash(collection: string): string {
  return `collection-build:${collection}`;
}

export interface BuildDeps {
  store: CollectionStore;
  model: CollectionModel;
  spec: PreprocessSpec;
  /** Decoding under the process's one decode bound (IMAGE_DECODE_CONCURRENCY). */
  decode: BoundedDecode;
  batchSize: number;
  shardSize: number;
  log?: { warn(object: object, message: string): void };
}

interface Shard {
  /** Byte offsets in pending.ndjson: the shard's uploads are the lines from `from` to `to`. */
  from: number;
  to: number;
  count: number;
}

interface Plan {
  jobId: string;
  shards: Shard[];
  /** Processes that computed shards (pid@host), added as their shards are committed. */
  workers: string[];
}

interface LockOwner {
  pid: number;
  host: string;
  token: string;
  jobId?: string;
  done?: number;
}

const HOST = hostname();
const WORKER = `${process.pid}@${HOST}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A lock file: created exclusively, refreshed by its holder, stale when its holder is gone. */
export class FileLock {
  readonly owner: LockOwner;

  constructor(
    readonly file: string,
    extra: Partial<LockOwner> = {},
  ) {
    this.owner = { pid: process.pid, host: HOST, token: randomBytes(8).toString('hex'), ...extra };
  }

  async tryTake(): Promise<boolean> {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await writeFile(this.file, JSON.stringify(this.owner), {
          flag: fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_WRONLY,
        });
        return true;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        const holder = await readHolder(this.file);
        if (holder && !isStale(holder)) return false;
        await rm(this.file, { force: true });
      }
    }
    return false;
  }

  /** Rewrites the file (its mtime is the holder's heartbeat), with `done` for a shard's claim. */
  async refresh(done?: number): Promise<void> {
    if (done !== undefined) this.owner.done = done;
    await writeFile(this.file, JSON.stringify(this.owner)).catch(() => undefined);
  }

  async release(): Promise<void> {
    const holder = await readHolder(this.file);
    if (holder?.owner?.token === this.owner.token) await rm(this.file, { force: true });
  }
}

export async function readHolder(file: string): Promise<{ owner?: LockOwner; mtimeMs: number } | undefined> {
  try {
    const [text, info] = await Promise.all([readFile(file, 'utf8'), stat(file)]);
    let owner: LockOwner | undefined;
    try {
      owner = JSON.parse(text) as LockOwner;
    } catch {
      owner = undefined; // being written
    }
    return { owner, mtimeMs: info.mtimeMs };
  } catch {
    return undefined;
  }
}

export function isStale(holder: { owner?: LockOwner; mtimeMs: number }): boolean {
  if (Date.now() - holder.mtimeMs > LOCK_STALE_MS) return true;
  const { owner } = holder;
  return owner !== undefined && owner.host === HOST && owner.pid !== process.pid && !alive(owner.pid);
}

const running = (manifest: CollectionManifest | undefined, jobId: string) =>
  manifest !== undefined &&
  manifest.build.jobId === jobId &&
  (manifest.build.state === 'running' || manifest.build.state === 'queued');

/** The shard job ids of a build. */
export function shardJobId(buildJobId: string, shard: number): string {
  return `shard-${buildJobId.replace(/^build-/, '')}-${shard}`;
}

/** Runs collection builds and their shards for the job queue (see the header). */
export class CollectionBuilds {
  /** The builds and shards this process runs (stop() hands them back). */
  private readonly processing = new RunningJobs();

  constructor(private readonly deps: BuildDeps) {}

  private buildDir(id: string): string {
    return this.deps.store.file(id, 'build');
  }

  private jobDir(id: string, jobId: string): string {
    return path.join(this.buildDir(id), jobId);
  }

  private shardFile(id: string, jobId: string, shard: number, suffix: 'out' | 'claim'): string {
    return path.join(this.jobDir(id, jobId), `shard-${shard}.${suffix}`);
  }

  /** The live build of a collection (its job id) when some process holds its lock. */
  async liveBuild(id: string): Promise<string | undefined> {
    const holder = await readHolder(path.join(this.buildDir(id), 'parent.lock'));
    return holder?.owner?.jobId !== undefined && !isStale(holder) ? holder.owner.jobId : undefined;
  }

  /**
   * Joins the running build of a collection, if a live process builds it and has not completed it:
   * its total grows by the uploads pending, and it plans them before it completes (that check
   * takes the same lock). Resolves with its job id.
   */
  async join(id: string): Promise<string | undefined> {
    if ((await this.liveBuild(id)) === undefined) return undefined;
    return this.withCommitLock(id, async () => {
      const live = await this.liveBuild(id);
      const manifest = await this.deps.store.manifest(id);
      if (live === undefined || !manifest || !running(manifest, live)) return undefined;
      const pending = (await this.deps.store.readPending(id, manifest.pendingBytes)).length;
      await this.deps.store.writeManifest({
        ...manifest,
        build: { ...manifest.build, total: manifest.build.done + pending },
      });
      return live;
    });
  }

  /**
   * True when job `jobId` is the collection's build and it has ended (completed, failed or
   * cancelled): it plans no more uploads, though its job may still be running for a moment.
   */
  async ended(id: string, jobId: string): Promise<boolean> {
    const manifest = await this.deps.store.manifest(id);
    return manifest?.build.jobId === jobId && !running(manifest, jobId);
  }

  /** Runs `work` under the collection's commit lock (held briefly: a plan, a commit, a stop). */
  async withCommitLock<T>(id: string, work: () => Promise<T>): Promise<T> {
    await mkdir(this.buildDir(id), { recursive: true });
    const lock = new FileLock(path.join(this.buildDir(id), 'commit.lock'));
    while (!(await lock.tryTake())) await sleep(10 + Math.random() * 20);
    try {
      return await work();
    } finally {
      await lock.release();
    }
  }

  private async readPlan(id: string, jobId: string): Promise<Plan | undefined> {
    try {
      return JSON.parse(await readFile(path.join(this.jobDir(id, jobId), 'plan.json'), 'utf8')) as Plan;
    } catch {
      return undefined;
    }
  }

  private async writePlan(id: string, plan: Plan): Promise<void> {
    await mkdir(this.jobDir(id, plan.jobId), { recursive: true });
    await writeAtomic(path.join(this.jobDir(id, plan.jobId), 'plan.json'), JSON.stringify(plan));
  }

  /** Adds shards for the uploads pending after the plan's last one; resolves with the new ones' indices. */
  private async extendPlan(plan: Plan, manifest: CollectionManifest): Promise<number[]> {
    const from = plan.shards.at(-1)?.to ?? manifest.pendingBytes;
    const pending = await this.deps.store.readPending(manifest.id, Math.max(from, manifest.pendingBytes));
    const added: number[] = [];
    let start = Math.max(from, manifest.pendingBytes);
    for (let i = 0; i < pending.length; i += this.deps.shardSize) {
      const slice = pending.slice(i, i + this.deps.shardSize);
      added.push(plan.shards.length);
      plan.shards.push({ from: start, to: slice[slice.length - 1].end, count: slice.length });
      start = slice[slice.length - 1].end;
    }
    if (added.length > 0) await this.writePlan(manifest.id, plan);
    return added;
  }

  /**
   * Marks a collection's build as started by job `jobId` (an upload that submitted it): its total
   * is known to every replica before the job runs. A build that is already this job's only gets its
   * total updated; with `onlyIfCurrent`, only that.
   */
  async announce(id: string, jobId: string, onlyIfCurrent = false): Promise<void> {
    await this.withCommitLock(id, async () => {
      const manifest = await this.deps.store.manifest(id);
      if (!manifest || (onlyIfCurrent && manifest.build.jobId !== jobId)) return;
      const pending = (await this.deps.store.readPending(id, manifest.pendingBytes)).length;
      const build =
        manifest.build.jobId === jobId
          ? { ...manifest.build }
          : {
              ...emptyBuild(),
              jobId,
              state: 'running' as const,
              resumedFrom: manifest.images,
              startedAt: new Date().toISOString(),
            };
      build.total = build.done + pending;
      await this.deps.store.writeManifest({ ...manifest, build });
    });
  }

  /** The stop hook of a build (a cancel): the manifest says cancelled, what is not committed goes. */
  async stopped(id: string, jobId: string): Promise<void> {
    if (!(await this.deps.store.manifest(id))) return;
    await this.withCommitLock(id, async () => {
      const manifest = await this.deps.store.manifest(id);
      if (!manifest || !running(manifest, jobId)) return;
      await this.deps.store.writeManifest({
        ...manifest,
        pendingBytes: await this.deps.store.pendingSize(id),
        build: { ...manifest.build, state: 'cancelled', finishedAt: new Date().toISOString() },
      });
      await removeJobDir(this.jobDir(id, jobId));
    });
  }

  /** Stops this process's builds and shards (shutdown): they hand back, to resume; resolves when they have. */
  async stop(): Promise<void> {
    await this.processing.stop();
  }

  readonly buildProcessor: KindProcessor<'collection-build'> = (data, context) =>
    this.processing.track(this.build(data.collection, context));

  readonly shardProcessor: KindProcessor<'collection-shard'> = (data, context) =>
    this.processing.track(this.shard(data.collection, data.build, data.shard, context));

  private async build(id: string, context: JobContext<BuildProgress>): Promise<JobOutcome<BuildResult>> {
    const { store } = this.deps;
    const jobId = context.id ?? 'unknown';
    const handBack = () => this.processing.handingBack(context);
    if (await context.isCancelled()) return { cancelled: true };
    if (!(await store.manifest(id))) return { cancelled: true };
    await mkdir(this.buildDir(id), { recursive: true });
    // One build per collection: a second one (another replica without Redis) joins the first.
    const lock = new FileLock(path.join(this.buildDir(id), 'parent.lock'), { jobId });
    while (!(await lock.tryTake())) {
      // Another build that still runs takes this one's uploads (it plans them before it completes:
      // join checks under the lock that its completion takes); one that is finishing is waited for.
      const holder = await this.join(id);
      if (holder !== undefined && holder !== jobId) {
        const manifest = await store.manifest(id);
        return {
          cancelled: false,
          result: {
            collection: id,
            images: manifest?.images ?? 0,
            done: 0,
            skipped: 0,
            duplicates: 0,
            joined: holder,
            workers: [],
          },
        };
      }
      // This very job, taken over from a process that died or handed it back, or a build that is
      // finishing: wait for its lock.
      if (handBack()) throw new JobHandedBack();
      if (await context.isCancelled()) return { cancelled: true };
      await sleep(500);
    }
    const heartbeat = setInterval(() => void lock.refresh(), HEARTBEAT_MS);
    heartbeat.unref();
    let final: 'queued' | 'failed' | undefined;
    let failure = '';
    try {
      let plan = await this.withCommitLock(id, async () => {
        const manifest = await store.manifest(id);
        if (!manifest) return undefined;
        const resuming = manifest.build.jobId === jobId;
        const existing = resuming ? await this.readPlan(id, jobId) : undefined;
        if (!resuming) {
          // Whatever an earlier build left (a crashed process's plan) goes: its uploads are planned anew.
          for (const name of await readdir(this.buildDir(id)).catch(() => [] as string[])) {
            if (!name.endsWith('.lock'))
              await rm(path.join(this.buildDir(id), name), { recursive: true, force: true });
          }
        }
        const plan: Plan = existing ?? { jobId, shards: [], workers: [] };
        await this.extendPlan(plan, manifest);
        await this.writePlan(id, plan);
        const build = resuming
          ? { ...manifest.build, state: 'running' as const, resumedFrom: manifest.images, finishedAt: null }
          : {
              ...emptyBuild(),
              jobId,
              state: 'running' as const,
              resumedFrom: manifest.images,
              startedAt: new Date().toISOString(),
            };
        build.total = build.done + (await store.readPending(id, manifest.pendingBytes)).length;
        await store.writeManifest({ ...manifest, build });
        return plan;
      });
      if (!plan) return { cancelled: true };
      const first = await store.manifest(id);
      const doneAtStart = first?.build.done ?? 0;
      const started = Date.now();
      await this.spawn(id, jobId, plan, 0, context);
      let lastReport = 0;
      const report = async (manifest: CollectionManifest, force = false) => {
        if (!force && Date.now() - lastReport < REPORT_EVERY_MS) return;
        lastReport = Date.now();
        await context.reportProgress(await this.progress(manifest, plan!, doneAtStart, started));
      };
      const stop = async () => handBack() || (await context.isCancelled());
      for (;;) {
        if (handBack()) throw new JobHandedBack();
        if (await context.isCancelled()) return { cancelled: true };
        const computed = await this.nextShard(id, plan, stop, async () => {
          const manifest = await store.manifest(id);
          if (manifest) await report(manifest);
        });
        const manifest = await this.commitReady(id, jobId);
        if (!manifest) return { cancelled: true };
        plan = (await this.readPlan(id, jobId)) ?? plan;
        await report(manifest);
        if (committedShards(plan, manifest) < plan.shards.length) {
          if (!computed) await sleep(WAIT_MS); // the rest is being computed elsewhere
          continue;
        }
        // Every shard is in: plan the uploads that arrived meanwhile, or complete.
        const next = await this.withCommitLock(id, async () => {
          const current = await store.manifest(id);
          const latest = await this.readPlan(id, jobId);
          if (!current || !latest || !running(current, jobId)) return undefined;
          const added = await this.extendPlan(latest, current);
          if (added.length > 0) {
            const pending = (await store.readPending(id, current.pendingBytes)).length;
            await store.writeManifest({
              ...current,
              build: { ...current.build, total: current.build.done + pending },
            });
            return { plan: latest, added, manifest: current };
          }
          const done: CollectionManifest = {
            ...current,
            build: { ...current.build, state: 'completed', finishedAt: new Date().toISOString() },
          };
          await store.writeManifest(done);
          await removeJobDir(this.jobDir(id, jobId));
          return { plan: latest, added, manifest: done };
        });
        if (!next) return { cancelled: true };
        plan = next.plan;
        if (next.added.length > 0) {
          await this.spawn(id, jobId, plan, next.added[0], context);
          continue;
        }
        await report(next.manifest, true);
        const { build } = next.manifest;
        return {
          cancelled: false,
          result: {
            collection: id,
            images: next.manifest.images,
            done: build.done,
            skipped: build.skipped.length,
            duplicates: build.duplicates.length,
            workers: plan.workers,
          },
        };
      }
    } catch (error) {
      if (error instanceof JobHandedBack || (error instanceof BuildAborted && handBack())) {
        final = 'queued';
        throw new JobHandedBack();
      }
      if (error instanceof BuildAborted) return { cancelled: true };
      if (!(await store.manifest(id))) return { cancelled: true }; // deleted meanwhile
      final = 'failed';
      failure = (error as Error).message;
      this.deps.log?.warn({ err: error, collection: id }, 'collection build failed');
      throw error;
    } finally {
      clearInterval(heartbeat);
      try {
        if (final) await this.finish(id, jobId, final, failure);
      } finally {
        await lock.release();
      }
    }
  }

  /** A build that stops without completing: handed back ("queued", to resume) or failed. */
  private async finish(id: string, jobId: string, state: 'queued' | 'failed', error: string): Promise<void> {
    const { store } = this.deps;
    if (!(await store.manifest(id))) return;
    await this.withCommitLock(id, async () => {
      const manifest = await store.manifest(id);
      if (!manifest || !running(manifest, jobId)) return;
      const failed = state === 'failed';
      await store.writeManifest({
        ...manifest,
        // A failed build drops what it had not indexed, as a cancelled one does.
        pendingBytes: failed ? await store.pendingSize(id) : manifest.pendingBytes,
        build: {
          ...manifest.build,
          state,
          finishedAt: failed ? new Date().toISOString() : null,
          ...(failed ? { error } : {}),
        },
      });
      if (failed) await removeJobDir(this.jobDir(id, jobId));
    });
  }

  private async spawn(
    id: string,
    jobId: string,
    plan: Plan,
    from: number,
    context: JobContext<BuildProgress>,
  ): Promise<void> {
    if (!context.spawn) return;
    const jobs: SpawnedJob[] = [];
    for (let shard = from; shard < plan.shards.length; shard++) {
      jobs.push({
        id: shardJobId(jobId, shard),
        data: { kind: 'collection-shard', collection: id, build: jobId, shard, hash: `${jobId}:${shard}` },
      });
    }
    await context.spawn(jobs);
  }

  /** The build's progress: what the manifest counts, plus the shards computed or in flight. */
  private async progress(
    manifest: CollectionManifest,
    plan: Plan,
    doneAtStart: number,
    started: number,
  ): Promise<BuildProgress> {
    const committed = committedShards(plan, manifest);
    let inFlight = 0;
    let running = 0;
    for (let shard = committed; shard < plan.shards.length; shard++) {
      const out = await stat(this.shardFile(manifest.id, plan.jobId, shard, 'out')).catch(() => undefined);
      if (out) {
        inFlight += plan.shards[shard].count;
        continue;
      }
      const claim = await readHolder(this.shardFile(manifest.id, plan.jobId, shard, 'claim'));
      if (claim && !isStale(claim)) {
        running++;
        inFlight += claim.owner?.done ?? 0;
      }
    }
    const done = manifest.build.done + inFlight;
    const seconds = (Date.now() - started) / 1000;
    return {
      collection: manifest.id,
      done,
      total: Math.max(manifest.build.total, done),
      indexed: manifest.images,
      skipped: manifest.build.skipped,
      duplicates: manifest.build.duplicates.length,
      imagesPerSecond: seconds > 0 && done > doneAtStart ? (done - doneAtStart) / seconds : null,
      shards: { total: plan.shards.length, committed, running },
    };
  }

  /**
   * Claims the first shard of the plan that nobody computes and computes it; resolves with false
   * when there was none to claim.
   */
  private async nextShard(
    id: string,
    plan: Plan,
    stop: () => Promise<boolean>,
    onBatch: () => Promise<void>,
  ): Promise<boolean> {
    const manifest = await this.deps.store.manifest(id);
    if (!manifest) return false;
    for (let shard = committedShards(plan, manifest); shard < plan.shards.length; shard++) {
      if (await this.computeIfFree(id, plan, shard, stop, onBatch)) return true;
    }
    return false;
  }

  /** Computes a shard unless it is claimed, computed or committed; true when computed here. */
  private async computeIfFree(
    id: string,
    plan: Plan,
    shard: number,
    stop: () => Promise<boolean>,
    onBatch: () => Promise<void>,
  ): Promise<boolean> {
    const { store, model } = this.deps;
    const out = this.shardFile(id, plan.jobId, shard, 'out');
    if (await exists(out)) return false;
    const claim = new FileLock(this.shardFile(id, plan.jobId, shard, 'claim'), {
      jobId: plan.jobId,
      done: 0,
    });
    if (!(await claim.tryTake().catch(() => false))) return false;
    const heartbeat = setInterval(() => void claim.refresh(), HEARTBEAT_MS);
    heartbeat.unref();
    try {
      const manifest = await store.manifest(id);
      const range = plan.shards[shard];
      // Computed or committed while the claim was being taken.
      if (!manifest || range.to <= manifest.pendingBytes || (await exists(out))) return false;
      const entries: PendingEntry[] = (await store.readPending(id, range.from))
        .filter(({ end }) => end <= range.to)
        .map(({ entry }) => entry);
      const known = new Set((await indexedShas(store, manifest)).keys());
      const output = await computeShard({
        store,
        id,
        model,
        spec: this.deps.spec,
        decode: this.deps.decode,
        batchSize: this.deps.batchSize,
        entries,
        known,
        // Stopped: this process shuts down, the job is cancelled, or the build is no longer running.
        shouldStop: async () => (await stop()) || !running(await store.manifest(id), plan.jobId),
        onBatch: async (done) => {
          await claim.refresh(done);
          await onBatch();
        },
      });
      await writeAtomic(out, encodeShard({ ...output, computedBy: WORKER }));
      return true;
    } finally {
      clearInterval(heartbeat);
      await claim.release();
    }
  }

  /**
   * Commits the computed shards that come next, in order; resolves with the manifest, or undefined
   * when the build is no longer running (cancelled, or replaced).
   */
  private async commitReady(id: string, jobId: string): Promise<CollectionManifest | undefined> {
    const { store, model } = this.deps;
    return this.withCommitLock(id, async () => {
      let manifest = await store.manifest(id);
      const plan = await this.readPlan(id, jobId);
      if (!manifest || !plan || !running(manifest, jobId)) return undefined;
      const workers = new Set(plan.workers);
      for (let shard = committedShards(plan, manifest); shard < plan.shards.length; shard++) {
        const file = this.shardFile(id, jobId, shard, 'out');
        let bytes: Buffer;
        try {
          bytes = await readFile(file);
        } catch {
          break;
        }
        const output = decodeShard(bytes, model.neuronCount, model.embedDim);
        manifest = await commitShard(store, manifest, output, plan.shards[shard].to);
        if (output.computedBy) workers.add(output.computedBy);
        await rm(file, { force: true });
      }
      if (workers.size > plan.workers.length) await this.writePlan(id, { ...plan, workers: [...workers] });
      return manifest;
    });
  }

  /** A shard job: computes its shard unless the build (or another worker) did, then commits what is ready. */
  private async shard(
    id: string,
    jobId: string,
    shard: number,
    context: JobContext,
  ): Promise<JobOutcome<{ computed: boolean; done: number }>> {
    const { store } = this.deps;
    const plan = await this.readPlan(id, jobId);
    const manifest = await store.manifest(id);
    const range = plan?.shards[shard];
    if (!plan || !range || !running(manifest, jobId) || range.to <= manifest!.pendingBytes) {
      return { cancelled: false, result: { computed: false, done: 0 } };
    }
    const stop = async () => this.processing.handingBack(context) || (await context.isCancelled());
    let computed = false;
    try {
      computed = await this.computeIfFree(id, plan, shard, stop, async () => undefined);
    } catch (error) {
      // Stopped (shutdown, cancel), or the collection went: the build itself takes the shard over.
      if (error instanceof BuildAborted || !(await store.manifest(id))) {
        return { cancelled: false, result: { computed: false, done: 0 } };
      }
      throw error;
    }
    if (computed) await this.commitReady(id, jobId);
    return { cancelled: false, result: { computed, done: computed ? range.count : 0 } };
  }
}

/** Shards of the plan that the manifest counts (its pending cursor is past them). */
function committedShards(plan: Plan, manifest: CollectionManifest): number {
  let committed = 0;
  while (committed < plan.shards.length && plan.shards[committed].to <= manifest.pendingBytes) committed++;
  return committed;
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}

/**
 * Removes a job folder (a build's or a labelling's), into which shards of other processes may still
 * be writing: a file created during the recursive removal makes it fail (ENOTEMPTY), so it retries
 * (Node's own retry loop, for ENOTEMPTY, EBUSY and EPERM).
 */
export function removeJobDir(dir: string): Promise<void> {
  return rm(dir, { recursive: true, force: true, maxRetries: 20, retryDelay: 25 });
}
