/**
 * A neuron's cosine neighbours on a loaded model (neighbours.ts has the arithmetic): by its row of
 * W (the model's bilinear.f32, held in memory; the row norms computed once), or by its activation
 * pattern over a collection's images (the means file: the per-neuron means and centred sums of
 * squares computed in two scans once per collection state and kept; then, per query, the neuron's
 * column from the column-major copy and one scan for the numerators).
 */
import type { NeuronCatalogue } from '../attribution/neuron-catalogue.js';
import { CollectionReader } from '../collections/reader.js';
import type { CollectionService } from '../collections/service.js';
import { FILES, type CollectionManifest } from '../collections/store.js';
import { badRequest, conflict, HttpError } from '../errors.js';
import {
  CentredDots,
  ColumnMoments,
  correlations,
  rowNorms,
  topNeighbours,
  weightCosines,
  type Neighbour,
} from './neighbours.js';
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

interface Moments {
  images: number;
  means: Float64Array;
  squares: Float64Array;
}

export class NeighbourService {
  private norms?: Float64Array;
  private readonly moments = new Map<string, Promise<Moments>>();

  constructor(
    private readonly options: {
      model: NeighbourModel;
      catalogue: NeuronCatalogue;
      collections: CollectionService;
    },
  ) {}

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
  async byActivations(manifest: CollectionManifest, neuron: number, k: number): Promise<Neighbour[]> {
    if (manifest.images < 2) {
      throw conflict(
        `collection "${manifest.id}" has ${manifest.images} indexed image${manifest.images === 1 ? '' : 's'} (build: ${manifest.build.state}): an activation pattern needs at least 2`,
      );
    }
    const reader = new CollectionReader(this.options.collections.store, manifest);
    const { means, squares, images } = await this.momentsOf(manifest, reader);
    if (!(squares[neuron] > 0)) {
      throw conflict(
        `neuron ${neuron} is constant over the ${images} images of collection "${manifest.id}": its activation pattern has no direction`,
      );
    }
    const column = await reader.column(FILES.means, neuron);
    const target = Float64Array.from(column.subarray(0, images), (value) => value - means[neuron]);
    const dots = new CentredDots(means, target);
    await reader.scan(FILES.means, (rows, start, count) => {
      // Rows past the moments' count (committed since) are left out: one set of images throughout.
      const kept = Math.min(count, images - start);
      if (kept > 0) dots.add(rows, start, kept);
    });
    return topNeighbours(correlations(dots.dots, squares, squares[neuron]), neuron, k);
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

  /** Per-neuron means and centred sums of squares over the collection's images, once per state. */
  private momentsOf(manifest: CollectionManifest, reader: CollectionReader): Promise<Moments> {
    const key = `${manifest.id}|${manifest.images}|${manifest.build.jobId ?? ''}|${manifest.build.finishedAt ?? ''}`;
    let moments = this.moments.get(key);
    if (!moments) {
      moments = (async () => {
        const accumulator = new ColumnMoments(manifest.model.neurons);
        await reader.scan(FILES.means, (rows, _start, count) => accumulator.addToMeans(rows, count));
        accumulator.finishMeans();
        await reader.scan(FILES.means, (rows, _start, count) => accumulator.addToSquares(rows, count));
        return accumulator.result();
      })();
      moments.catch(() => this.moments.delete(key));
      for (const old of this.moments.keys()) if (old.startsWith(`${manifest.id}|`)) this.moments.delete(old);
      if (this.moments.size >= 8) this.moments.delete(this.moments.keys().next().value as string);
      this.moments.set(key, moments);
    }
    return moments;
  }
}
