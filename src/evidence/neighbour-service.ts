/**
 * A neuron's cosine neighbours on a loaded model (neighbours.ts has the arithmetic): by its row of
 * W (the model's bilinear.f32, held in memory; the row norms computed once), or by its activation
 * pattern over a collection's images (activation-neighbours.ts, on a thread of its own by default:
 * the per-neuron means and centred sums of squares computed in one pass once per collection state
 * and kept; then, per query, the numerators from the column-major blocks).
 */
import path from 'node:path';
import type { NeuronCatalogue } from '../attribution/neuron-catalogue.js';
import type { CollectionService } from '../collections/service.js';
import type { CollectionManifest } from '../collections/store.js';
import { badRequest, conflict, HttpError } from '../errors.js';
import { InProcess, type Runner } from '../threads/in-process.js';
import { siblingModule, WorkerPool } from '../threads/worker-pool.js';
import { ActivationNeighbours, type ActivationQuery } from './activation-neighbours.js';
import { rowNorms, topNeighbours, weightCosines, type Neighbour } from './neighbours.js';
import { PROBE_COLLECTION } from './service.js';

export type NeighbourKind = 'weights' | 'activations';
export const NEIGHBOUR_KINDS: readonly NeighbourKind[] = ['weights', 'activations'];

export interface NeighbourModel {
  readonly neuronCount: number;
  readonly embedDim: number;
  /** W, row-major [C, D]. */
  readonly bilinear: Float32Array;
}

export interface NamedNeighbour extends Neighbour {
  label: string | null;
  family: string | null;
}

export interface Neighbours {
  neuron: number;
  by: NeighbourKind;
  collection: string | null;
  images: number | null;
  neighbours: NamedNeighbour[];
}

export class NeighbourService {
  private norms?: Float64Array;
  private readonly activations: Runner<ActivationQuery, Neighbour[]>;

  constructor(
    private readonly options: {
      model: NeighbourModel;
      catalogue: NeuronCatalogue;
      collections: CollectionService;
      /** Neighbours by activations on a thread of their own (default), or on the calling thread. */
      thread?: boolean;
    },
  ) {
    if (options.thread ?? true) {
      this.activations = new WorkerPool(siblingModule(import.meta.url, 'neighbour-thread'), 1);
    } else {
      const scans = new ActivationNeighbours();
      this.activations = new InProcess((query: ActivationQuery) => scans.neighbours(query));
    }
  }

  close(): Promise<void> {
    return this.activations.close();
  }

  private checkNeuron(neuron: number): void {
    const count = this.options.model.neuronCount;
    if (!Number.isInteger(neuron) || neuron < 0 || neuron >= count)
      throw badRequest(`neuron ${neuron} is out of range (0 to ${count - 1})`);
  }

  async neighbours(
    neuron: number,
    options: { by: NeighbourKind; k: number; collection?: string },
  ): Promise<Neighbours> {
    this.checkNeuron(neuron);
    if (options.by === 'weights') {
      return {
        neuron,
        by: 'weights',
        collection: null,
        images: null,
        ...this.named(this.byWeights(neuron, options.k)),
      };
    }
    const manifest = await this.resolveCollection(options.collection);
    const found = await this.byActivations(manifest, neuron, options.k);
    return {
      neuron,
      by: 'activations',
      collection: manifest.id,
      images: manifest.images,
      ...this.named(found),
    };
  }

  /** The k rows of W most like the neuron's by cosine. */
  byWeights(neuron: number, k: number): Neighbour[] {
    const { bilinear, neuronCount, embedDim } = this.options.model;
    this.norms ??= rowNorms(bilinear, neuronCount, embedDim);
    if (this.norms[neuron] === 0) throw conflict(`neuron ${neuron}'s row of W is zero: it has no direction`);
    return topNeighbours(weightCosines(bilinear, this.norms, embedDim, neuron), neuron, k);
  }

  /** The k neurons whose centred activation columns over the collection are most like the neuron's. */
  byActivations(manifest: CollectionManifest, neuron: number, k: number): Promise<Neighbour[]> {
    // The store's root is DATA_DIR/collections.
    const dataDir = path.dirname(this.options.collections.store.root);
    return this.activations.run({ dataDir, manifest, neuron, k });
  }

  private named(found: Neighbour[]): { neighbours: NamedNeighbour[] } {
    return {
      neighbours: found.map((item) => {
        const entry = this.options.catalogue.get(item.neuron);
        return { ...item, label: entry?.label ?? null, family: entry?.family ?? null };
      }),
    };
  }

  /** The one asked for (404 when unknown), else the probe collection; without either a 400 that says so. */
  private async resolveCollection(id: string | undefined): Promise<CollectionManifest> {
    if (id !== undefined) return this.options.collections.get(id);
    try {
      return await this.options.collections.get(PROBE_COLLECTION);
    } catch (error) {
      if (error instanceof HttpError && error.statusCode === 404) {
        throw badRequest(
          `by=activations needs a collection: pass ?collection=<id> (GET /v1/collections lists them; there is no "${PROBE_COLLECTION}" collection)`,
        );
      }
      throw error;
    }
  }
}
