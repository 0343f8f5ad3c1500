/**
 * Retrieval in a collection: the indexed images ranked for one query, highest score first (ties by
 * the smaller image id), in one of four ways:
 *
 *   embedding  cosine of each image embedding with a query embedding (a text's or an uploaded
 *              image's, computed by the caller);
 *   image      the same with the stored embedding of one of the collection's images;
 *   neuron     the neuron's activation: its spatial mean (the article's) or its spatial maximum,
 *              read as one column (columns.ts);
 *   direction  a vector over the C neurons (an emotion's composition, W·t, …) against each image's
 *              neuron means: the dot product (default: Σ_c d_c·m_c, the direction's raw
 *              contribution) or the cosine. A sparse direction's dot product reads only the
 *              columns of its nonzero neurons; otherwise the means go through the same 8-bit
 *              screen as text retrieval (their codes held in memory), and only the candidates'
 *              rows are read from means.f32 and scored exactly.
 *
 * Cosine and directions run on a thread of their own (retrieval-thread.ts, embedding-index.ts),
 * which keeps recently searched collections' embeddings (Float32 and 8-bit codes) and neuron means
 * (8-bit codes) in memory within COLLECTION_SEARCH_BYTES.
 */
import { badRequest, notFound } from '../errors.js';
import { InProcess, type Runner } from '../threads/in-process.js';
import { siblingModule, WorkerPool } from '../threads/worker-pool.js';
import { EmbeddingIndex, type ScoreAnswer, type ScoreRequest } from './embedding-index.js';
import type { CollectionReader } from './reader.js';
import { topK } from './stats.js';
import { FILES, type ImageMeta } from './store.js';

export type RetrievalRequest =
  { kind: 'setup'; memoryBytes: number; engine: 'ort' | 'js' } | { kind: 'score'; request: ScoreRequest };
export type RetrievalAnswer = { kind: 'ready' } | ({ kind: 'scores' } & ScoreAnswer);

export type Activation = 'mean' | 'max';
export type DirectionScore = 'dot' | 'cosine';

export type SearchQuery =
  | { by: 'embedding'; embedding: Float32Array }
  | { by: 'image'; imageId: number }
  | { by: 'neuron'; neuron: number; activation: Activation }
  | { by: 'direction'; direction: Float32Array; score: DirectionScore };

export interface SearchHit {
  imageId: number;
  name: string;
  category: string | null;
  caption: string | null;
  score: number;
}

export interface RetrievalOptions {
  /** Bytes of embeddings kept in memory (COLLECTION_SEARCH_BYTES; 0: every query reads the file). */
  memoryBytes: number;
  /** Score on a thread of its own (default), or on the calling thread. */
  thread?: boolean;
  /** onnxruntime's Gemm (default) or a JavaScript loop. */
  engine?: 'ort' | 'js';
  /** A direction's dot product reads columns when it has at most this many nonzero values. */
  sparseColumns?: number;
}

/** Default of sparseColumns: about where reading columns stops being faster than one scan. */
export const SPARSE_COLUMNS = 16;

export class CollectionSearch {
  private readonly runner: Runner<RetrievalRequest, RetrievalAnswer>;
  private readonly sparseColumns: number;

  constructor(options: RetrievalOptions) {
    const setup: RetrievalRequest = {
      kind: 'setup',
      memoryBytes: options.memoryBytes,
      engine: options.engine ?? 'ort',
    };
    this.sparseColumns = options.sparseColumns ?? SPARSE_COLUMNS;
    if (options.thread ?? true) {
      this.runner = new WorkerPool(siblingModule(import.meta.url, 'retrieval-thread'), 1, () => [setup]);
    } else {
      const index = new EmbeddingIndex(setup.memoryBytes, setup.engine);
      this.runner = new InProcess(async (request: RetrievalRequest): Promise<RetrievalAnswer> => {
        if (request.kind === 'setup') return { kind: 'ready' };
        return { kind: 'scores', ...(await index.score(request.request)) };
      });
    }
  }

  /** The top `k` images of the collection for the query, with their metadata. */
  async search(reader: CollectionReader, query: SearchQuery, k: number): Promise<SearchHit[]> {
    const { ids, scores } = await this.rank(reader, query, k);
    const metas = await reader.metas(Array.from(ids));
    return Array.from(ids, (imageId, i) => {
      const meta = metas[i] as ImageMeta;
      return { imageId, name: meta.name, category: meta.category, caption: meta.caption, score: scores[i] };
    });
  }

  close(): Promise<void> {
    return this.runner.close();
  }

  private async rank(
    reader: CollectionReader,
    query: SearchQuery,
    k: number,
  ): Promise<{ ids: ArrayLike<number>; scores: ArrayLike<number> }> {
    const { manifest } = reader;
    const { neurons: C, embedDim: D } = manifest.model;
    switch (query.by) {
      case 'embedding':
        checkVector(query.embedding, D, 'embedding', `the model's embedding dimension`);
        return this.score(reader, FILES.embeddings, D, query.embedding, 'cosine', k);
      case 'image': {
        const meta = await reader.meta(query.imageId);
        if (!meta) {
          throw notFound(
            `image ${query.imageId} not found in collection "${manifest.id}" (ids 0 to ${manifest.images - 1} are indexed)`,
          );
        }
        const embedding = await reader.row(FILES.embeddings, query.imageId);
        return this.score(reader, FILES.embeddings, D, embedding, 'cosine', k);
      }
      case 'neuron': {
        if (!Number.isInteger(query.neuron) || query.neuron < 0 || query.neuron >= C) {
          throw badRequest(`neuron ${query.neuron} is out of range (0 to ${C - 1})`);
        }
        const values = await reader.column(
          query.activation === 'max' ? FILES.maxima : FILES.means,
          query.neuron,
        );
        const ids = topK(values, k);
        return { ids, scores: ids.map((id) => values[id]) };
      }
      case 'direction': {
        const { direction } = query;
        checkVector(direction, C, 'direction', 'the number of neurons');
        const nonzero: number[] = [];
        for (let c = 0; c < C; c++) if (direction[c] !== 0) nonzero.push(c);
        if (query.score === 'dot' && nonzero.length <= this.sparseColumns) {
          // Σ over the nonzero neurons in neuron order, in double precision: the sum a scan makes.
          const sums = new Float64Array(manifest.images);
          for (const c of nonzero) {
            const column = await reader.column(FILES.means, c);
            for (let i = 0; i < column.length; i++) sums[i] += direction[c] * column[i];
          }
          const values = Float32Array.from(sums);
          const ids = topK(values, k);
          return { ids, scores: ids.map((id) => values[id]) };
        }
        return this.score(reader, FILES.means, C, direction, query.score, k);
      }
    }
  }

  private async score(
    reader: CollectionReader,
    file: typeof FILES.embeddings | typeof FILES.means,
    dim: number,
    query: Float32Array,
    measure: 'cosine' | 'dot',
    k: number,
  ): Promise<ScoreAnswer> {
    const { manifest } = reader;
    const path = reader.file(file);
    const answer = await this.runner.run({
      kind: 'score',
      request: {
        file: path,
        key: `${path}@${manifest.createdAt}`,
        // Both are kept within the budget: the embeddings with their Float32 rows, the neuron
        // means (C values a row) as 8-bit codes alone, the candidates' rows read from means.f32.
        keep: true,
        holdValues: file === FILES.embeddings,
        measure,
        rows: manifest.images,
        dim,
        query,
        k,
      },
    });
    if (answer.kind !== 'scores') throw new Error('the retrieval thread answered out of turn');
    return answer;
  }
}

/** A query vector: `length` finite values, not all zero; else a 400 naming what is allowed. */
export function checkVector(values: ArrayLike<number>, length: number, name: string, what: string): void {
  if (values.length !== length) {
    throw badRequest(`${name} has ${values.length} values; it must have ${length} (${what})`);
  }
  let nonzero = false;
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) throw badRequest(`${name}[${i}] is not a finite number`);
    if (values[i] !== 0) nonzero = true;
  }
  if (!nonzero) throw badRequest(`${name} is all zeros; give at least one nonzero value`);
}
