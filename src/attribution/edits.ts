/**
 * Interventions at the neuron layer: edits of the neuron maps [C, h, w] (row-major, channel first)
 * that the attention-pool head then reads. An edit sets, scales, adds to or zeroes one neuron, at
 * every grid position or at one. The article's intervention check (add to a neuron on a blank
 * image) and the typographic defence (zero a set of neurons) are both edits.
 */
import { badRequest } from '../errors.js';

export type EditOp = 'set' | 'scale' | 'add' | 'zero';

export interface NeuronEdit {
  neuron: number;
  op: EditOp;
  /** The value to set, the factor to scale by, or the amount to add; not for "zero". */
  value?: number;
  /** One grid cell (row, column from the top-left); every cell when absent. */
  position?: { row: number; col: number };
}

/** A 400 for the first edit that names a neuron or a cell the model does not have, or lacks its value. */
export function checkEdits(
  edits: readonly NeuronEdit[],
  neuronCount: number,
  grid: readonly [number, number],
) {
  edits.forEach((edit, i) => {
    if (!Number.isInteger(edit.neuron) || edit.neuron < 0 || edit.neuron >= neuronCount) {
      throw badRequest(`edits[${i}].neuron ${edit.neuron} is out of range (0 to ${neuronCount - 1})`);
    }
    if (edit.op !== 'zero' && (edit.value === undefined || !Number.isFinite(edit.value))) {
      throw badRequest(`edits[${i}] (op "${edit.op}") needs a finite value`);
    }
    if (edit.op === 'zero' && edit.value !== undefined) {
      throw badRequest(`edits[${i}] (op "zero") takes no value`);
    }
    const { position } = edit;
    if (position) {
      const [h, w] = grid;
      const ok = (v: number, n: number) => Number.isInteger(v) && v >= 0 && v < n;
      if (!ok(position.row, h) || !ok(position.col, w)) {
        throw badRequest(
          `edits[${i}].position (${position.row}, ${position.col}) is outside the ${h} × ${w} grid ` +
            `(row 0 to ${h - 1}, col 0 to ${w - 1})`,
        );
      }
    }
  });
}

/** The maps with the edits applied, in order (a copy). */
export function applyEdits(
  maps: Float32Array,
  edits: readonly NeuronEdit[],
  grid: readonly [number, number],
): Float32Array {
  const [h, w] = grid;
  const cells = h * w;
  const out = maps.slice();
  for (const edit of edits) {
    const base = edit.neuron * cells;
    const [from, to] = edit.position
      ? [
          base + edit.position.row * w + edit.position.col,
          base + edit.position.row * w + edit.position.col + 1,
        ]
      : [base, base + cells];
    const value = edit.value ?? 0;
    for (let i = from; i < to; i++) {
      if (edit.op === 'set') out[i] = value;
      else if (edit.op === 'scale') out[i] *= value;
      else if (edit.op === 'add') out[i] += value;
      else out[i] = 0;
    }
  }
  return out;
}

/** Zero edits for a set of neurons at every position (an ablation). */
export function ablation(neurons: readonly number[]): NeuronEdit[] {
  return neurons.map((neuron) => ({ neuron, op: 'zero' as const }));
}
