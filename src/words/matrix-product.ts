/**
 * y = M q for the word index M [V, C] and a few query vectors q at once: the one hot loop of a
 * neighbours or arithmetic query (V·C multiply-adds per query, memory-bound for large indexes).
 *
 * Two engines with the same result:
 *   - `JsProduct`: a plain loop with four accumulators (≈1.4 ns per multiply-add on our CPUs);
 *   - `OrtProduct`: onnxruntime's MatMul (MLAS, SIMD, multi-threaded) on a one-node graph built
 *     here in memory; M is passed as an input tensor that wraps the index's Float32Array, so it is
 *     not copied. 5–10× faster than the loop; used by the service when it can be created.
 */
import * as ort from 'onnxruntime-node';

export interface MatrixProduct {
  /** M q_k for each query q_k ∈ R^C, each result ∈ R^V. */
  multiply(queries: readonly Float32Array[]): Promise<Float32Array[]>;
}

export class JsProduct implements MatrixProduct {
  constructor(
    private readonly m: Float32Array,
    private readonly rows: number,
    private readonly cols: number,
  ) {}

  async multiply(queries: readonly Float32Array[]): Promise<Float32Array[]> {
    return queries.map((q) => dotRows(this.m, this.rows, this.cols, q));
  }
}

/** m·q for every row of m [rows, cols]; four accumulators keep the loop pipelined. */
export function dotRows(m: Float32Array, rows: number, cols: number, q: Float32Array): Float32Array {
  const out = new Float32Array(rows);
  for (let i = 0, base = 0; i < rows; i++, base += cols) {
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    let j = 0;
    for (; j + 3 < cols; j += 4) {
      s0 += m[base + j] * q[j];
      s1 += m[base + j + 1] * q[j + 1];
      s2 += m[base + j + 2] * q[j + 2];
      s3 += m[base + j + 3] * q[j + 3];
    }
    for (; j < cols; j++) s0 += m[base + j] * q[j];
    out[i] = s0 + s1 + s2 + s3;
  }
  return out;
}

// --- a one-node ONNX graph, y[V,K] = MatMul(M[V,C], Q[C,K]), encoded by hand (protobuf) ----------

const varint = (value: number): number[] => {
  const out: number[] = [];
  let n = value;
  while (n > 127) {
    out.push((n & 127) | 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
};
const message = (field: number, bytes: number[]) => [
  ...varint((field << 3) | 2),
  ...varint(bytes.length),
  ...bytes,
];
const integer = (field: number, value: number) => [...varint(field << 3), ...varint(value)];
const text = (field: number, value: string) => message(field, [...Buffer.from(value, 'utf8')]);

/** ValueInfoProto of a float tensor with symbolic dimensions. */
function floatInput(name: string, dims: string[]): number[] {
  const FLOAT = 1;
  const shape = dims.flatMap((dim) => message(1, text(2, dim)));
  const tensorType = [...integer(1, FLOAT), ...message(2, shape)];
  return [...text(1, name), ...message(2, message(1, tensorType))];
}

/** ModelProto (IR 8, opset 13) of one MatMul node. */
export function matMulModel(): Uint8Array {
  const node = [...text(1, 'M'), ...text(1, 'Q'), ...text(2, 'Y'), ...text(4, 'MatMul')];
  const graph = [
    ...message(1, node),
    ...text(2, 'word_index_product'),
    ...message(11, floatInput('M', ['V', 'C'])),
    ...message(11, floatInput('Q', ['C', 'K'])),
    ...message(12, floatInput('Y', ['V', 'K'])),
  ];
  return Uint8Array.from([...integer(1, 8), ...message(8, integer(2, 13)), ...message(7, graph)]);
}

export class OrtProduct implements MatrixProduct {
  private readonly matrix: ort.Tensor;

  private constructor(
    private readonly session: ort.InferenceSession,
    m: Float32Array,
    private readonly rows: number,
    private readonly cols: number,
  ) {
    this.matrix = new ort.Tensor('float32', m, [rows, cols]);
  }

  /** `threads`: onnxruntime intra-op threads (0: one per core). */
  static async create(m: Float32Array, rows: number, cols: number, threads = 0): Promise<OrtProduct> {
    const session = await ort.InferenceSession.create(matMulModel(), {
      executionProviders: ['cpu'],
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
    });
    return new OrtProduct(session, m, rows, cols);
  }

  async multiply(queries: readonly Float32Array[]): Promise<Float32Array[]> {
    const K = queries.length;
    const q = new Float32Array(this.cols * K);
    queries.forEach((query, k) => {
      for (let j = 0; j < this.cols; j++) q[j * K + k] = query[j];
    });
    const outputs = await this.session.run({
      M: this.matrix,
      Q: new ort.Tensor('float32', q, [this.cols, K]),
    });
    const y = outputs.Y.data as Float32Array;
    return queries.map((_, k) => {
      const out = new Float32Array(this.rows);
      for (let i = 0; i < this.rows; i++) out[i] = y[i * K + k];
      return out;
    });
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
