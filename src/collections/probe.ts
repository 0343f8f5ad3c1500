/**
 * The probe collection of a model directory: when the directory ships `probe.tar.gz` (the embedded
 * toy model does: held-out renders of every concept, tools/toyworld/probe.py), the service installs
 * it at start as the collection `probe`, owned by the service (only an admin key may delete it or add
 * to it), so that every collection route answers on a fresh DATA_DIR.
 *
 * The archive is listed in clip.json, so it is part of the model's sha256: a probe of another model
 * or of another probe file is of another sha, and is replaced. An installed probe of this model is
 * left alone (a build interrupted by a shutdown resumes with the others); one whose build failed or
 * was cancelled, or that an admin emptied, is built again. Replicas on one DATA_DIR install it once:
 * the first to create the collection stages the archive, the others find it there.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { OPTIONAL_FILES } from '../clip/model-directory.js';
import { readArchive } from './archive.js';
import { labelEntries } from './folder.js';
import { SERVICE_OWNER } from './quotas.js';
import { INSTALLING_MS, type CollectionService, type Logger, type Upload } from './service.js';

export const PROBE_ID = 'probe';
/** The file a model directory may carry (an optional entry of clip.json's files). */
export const PROBE_FILE = OPTIONAL_FILES.probeCollection;
/** Bytes the probe archive may expand to. */
const PROBE_MAX_BYTES = 256 * 1024 * 1024;
/** Originals written at once while the probe is staged. */
const PARALLEL_WRITES = 8;

export type ProbeOutcome =
  | 'absent' // the model directory has no probe
  | 'ready' // installed for this model (built, or its build resumes)
  | 'installed' // staged now; its build runs
  | 'elsewhere'; // another replica created it at the same moment

export interface ProbeModel {
  readonly sha256: string;
  readonly directory: { dir: string; manifest: { files: Record<string, string> } };
}

export interface ProbeInstall {
  outcome: ProbeOutcome;
  /** Resolves once the archive's images are staged (the build then runs); rejects if they are not. */
  staged: Promise<void>;
}

/**
 * Installs (or keeps) the probe collection of the model; see the file comment. Resolves once the
 * collection exists (listed from then on); its images are staged in the background (`staged`).
 */
export async function installProbe(
  service: CollectionService,
  model: ProbeModel,
  log: Logger,
  signal?: AbortSignal,
): Promise<ProbeInstall> {
  const done = (outcome: ProbeOutcome) => ({ outcome, staged: Promise.resolve() });
  if (!(PROBE_FILE in model.directory.manifest.files)) return done('absent');
  const { store } = service;
  const existing = await store.manifest(PROBE_ID);
  if (existing) {
    const { state } = existing.build;
    // Idle: staged and waiting for its build, or being staged by another replica right now.
    const staging =
      state === 'idle' &&
      ((await store.hasStaged(existing)) || Date.now() - Date.parse(existing.createdAt) < INSTALLING_MS);
    if (
      existing.model.sha256 === model.sha256 &&
      (state === 'completed' || state === 'running' || state === 'queued' || staging)
    ) {
      return done('ready');
    }
    // Another model's probe, or a failed, cancelled or emptied one: replaced.
    await store.remove(PROBE_ID);
    log.info(
      { collection: PROBE_ID, previous: existing.model.sha256.slice(0, 12), state: existing.build.state },
      'probe collection replaced',
    );
  }
  let created = false;
  try {
    await service.create(PROBE_ID, SERVICE_OWNER, true);
    created = true;
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode !== 409) throw error;
  }
  if (!created) return done('elsewhere');
  return { outcome: 'installed', staged: stage(service, model, signal) };
}

/**
 * Reads the archive, labels its entries (folder.ts) and stages them into the probe. Stopped by
 * `signal` (a shutdown) before its images are staged, it removes the probe, which the next start
 * installs again.
 */
async function stage(service: CollectionService, model: ProbeModel, signal?: AbortSignal): Promise<void> {
  const { store } = service;
  try {
    await stageImages(service, model, signal);
  } catch (error) {
    if (signal?.aborted) {
      await store.remove(PROBE_ID);
      return;
    }
    throw error;
  }
}

async function stageImages(service: CollectionService, model: ProbeModel, signal?: AbortSignal) {
  const { store } = service;
  const bytes = await readFile(path.join(model.directory.dir, PROBE_FILE));
  const entries = readArchive(bytes, { maxBytes: PROBE_MAX_BYTES, maxEntries: 1_000_000 });
  const uploads: Upload[] = labelEntries(entries).map(({ name, bytes, category, caption }) => ({
    name,
    bytes,
    category,
    caption,
  }));
  // The originals are written several at a time first (each write is synced: one at a time, as
  // addImages writes them, 2,290 renders take seconds); addImages then finds them stored.
  let next = 0;
  const writer = async () => {
    while (next < uploads.length) {
      signal?.throwIfAborted();
      const { bytes } = uploads[next++];
      await store.putImage(PROBE_ID, createHash('sha256').update(bytes).digest('hex'), bytes);
    }
  };
  await Promise.all(Array.from({ length: PARALLEL_WRITES }, writer));
  signal?.throwIfAborted();
  await service.addImages(PROBE_ID, uploads);
}
