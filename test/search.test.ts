/**
 * The hill climber on synthetic objectives with known optima, its determinism for a seed, its
 * budgets and cancellation; the objective's u = Wᵀd shortcut; request validation.
 */
import t from 'tap';
import {
  hillClimb,
  sequenceHash,
  type HillClimbOptions,
  type SequenceScorer,
} from '../src/search/hill-climb.js';
import { objectiveValue, projectDirection, neuronProjection } from '../src/search/objective.js';
import { attribution } from '../src/attribution/bilinear.js';
import { normaliseRequest, requestHash } from '../src/search/request.js';
import { rankTokens } from '../src/search/candidate-pool.js';
import { SeededRandom } from '../src/search/random.js';

const VOCAB = 200;
const START = 198;
const END = 199;
const TARGET = [17, 42, 5, 99, 42, 3];

/** +1 per position that matches TARGET, −0.25 per token of length mismatch: optimum TARGET (6). */
const positional: SequenceScorer = {
  async score(sequences) {
    return sequences.map((s) => {
      let hits = 0;
      s.forEach((id, i) => (hits += id === TARGET[i] ? 1 : 0));
      return hits - 0.25 * Math.abs(s.length - TARGET.length);
    });
  },
};

/** Single-token scores of the synthetic world: a token of TARGET scores 1, others 0. */
const pool = rankTokens(
  Float32Array.from({ length: VOCAB }, (_, id) => (TARGET.includes(id) ? 1 : 0)),
  new Set([START, END]),
);

const base = (overrides: Partial<HillClimbOptions> = {}): HillClimbOptions => ({
  scorer: positional,
  length: 6,
  steps: 300,
  batch: 32,
  restarts: 5,
  seed: 1,
  timeLimitMs: 30_000,
  pool,
  poolSize: 16,
  vocabSize: VOCAB,
  excluded: new Set([START, END]),
  describe: (ids) => ids.join(' '),
  ...overrides,
});

t.test('finds the known optimum of a positional objective', async (t) => {
  const result = await hillClimb(base());
  t.same(result.ids, TARGET);
  t.equal(result.score, 6);
  t.ok(result.curve.length <= 300 && result.curve.length === result.steps);
  for (let i = 1; i < result.curve.length; i++)
    t.ok(result.curve[i] >= result.curve[i - 1], 'curve is monotone');
  t.equal(result.top[0].text, TARGET.join(' '));
  t.equal(new Set(result.top.map((x) => x.text)).size, result.top.length, 'top texts are distinct');
  t.notOk(result.ids.includes(START) || result.ids.includes(END), 'never proposes special tokens');
});

t.test('finds the optimum from a start text of the wrong length (insert and delete moves)', async (t) => {
  const result = await hillClimb(base({ start: [1, 2, 3], seed: 7 }));
  t.same(result.ids, TARGET);
  const longer = await hillClimb(base({ start: [1, 2, 3, 4, 5, 6, 7, 8], length: 8, seed: 3 }));
  t.same(longer.ids, TARGET);
});

t.test('the same seed gives the same search; another seed another path', async (t) => {
  const fuzzy: SequenceScorer = {
    async score(sequences) {
      return sequences.map((s) =>
        s.reduce((acc, id, i) => acc + Math.sin(id * 0.37 + i) * Math.cos(id * i), 0),
      );
    },
  };
  const a = await hillClimb(base({ scorer: fuzzy, steps: 60, seed: 11 }));
  const b = await hillClimb(base({ scorer: fuzzy, steps: 60, seed: 11 }));
  const c = await hillClimb(base({ scorer: fuzzy, steps: 60, seed: 12 }));
  t.same(a, b);
  t.notSame(a.curve, c.curve);
});

t.test('stops at the step budget, the time budget, a plateau, or when told to', async (t) => {
  const few = await hillClimb(base({ steps: 3 }));
  t.equal(few.steps, 3);
  t.equal(few.stopReason, 'steps');
  t.equal(few.evaluations, 1 + 3 * 32);
  let clock = 0;
  const timed = await hillClimb(base({ now: () => (clock += 100), timeLimitMs: 1000 }));
  t.equal(timed.stopReason, 'time');
  t.ok(timed.steps < 10);
  const flat: SequenceScorer = { score: async (s) => s.map(() => 0) };
  const plateau = await hillClimb(base({ scorer: flat, restarts: 2, patience: 5 }));
  t.equal(plateau.stopReason, 'plateau');
  t.equal(plateau.restartsUsed, 2);
  t.equal(plateau.steps, 15);
  let calls = 0;
  const stopped = await hillClimb(base({ shouldStop: () => ++calls > 4 }));
  t.equal(stopped.stopReason, 'cancelled');
  t.equal(stopped.steps, 4);
});

t.test('a fluency penalty steers between equal objectives, and the score excludes it', async (t) => {
  const flat: SequenceScorer = { score: async (s) => s.map(() => 1) };
  const result = await hillClimb(
    base({ scorer: flat, length: 2, penalty: (ids) => ids.reduce((a, id) => a + (id === 7 ? 0 : 1), 0) }),
  );
  t.same(result.ids, [7]);
  t.equal(result.score, 1);
});

t.test(
  'the proposed-sequence hash: equal for equal sequences, distinct over every short sequence',
  async (t) => {
    t.equal(sequenceHash([5, 7, 9]), sequenceHash([5, 7, 9]));
    t.ok(Number.isSafeInteger(sequenceHash([49407, 0, 123])), 'a safe integer');
    const hashes = new Set<number>();
    let sequences = 0;
    for (let a = 0; a < 400; a++) {
      hashes.add(sequenceHash([a]));
      sequences += 1;
      for (let b = 0; b < 400; b++) {
        hashes.add(sequenceHash([a, b]));
        hashes.add(sequenceHash([a, b, a]));
        sequences += 2;
      }
    }
    t.equal(hashes.size, sequences, `${sequences} sequences, as many hashes (order and length count)`);
  },
);

t.test('u = Wᵀd gives d·(W·t/|t|) without W·t', async (t) => {
  const rng = new SeededRandom(3);
  const C = 12;
  const D = 5;
  const W = Float32Array.from({ length: C * D }, () => rng.next() - 0.5);
  const text = Float32Array.from({ length: D }, () => rng.next() - 0.5);
  const d = Array.from({ length: C }, () => rng.next() - 0.5);
  const a = attribution(W, text, 'unit');
  const direct = d.reduce((acc, di, i) => acc + di * a[i], 0);
  t.ok(Math.abs(objectiveValue(projectDirection(W, d, D), text) - direct) < 1e-5);
  t.ok(Math.abs(objectiveValue(neuronProjection(W, 4, D), text) - a[4]) < 1e-6);
  t.throws(() => projectDirection(W, [1, 2], D), RangeError);
  t.throws(() => neuronProjection(W, C, D), RangeError);
});

t.test('request validation and hashing', async (t) => {
  const ok = normaliseRequest({ neuron: 3 }, 10);
  t.equal(ok.length, 6);
  t.equal(
    requestHash('a'.repeat(64), ok),
    requestHash('a'.repeat(64), normaliseRequest({ neuron: 3, length: 6 }, 10)),
  );
  t.not(requestHash('a'.repeat(64), ok), requestHash('b'.repeat(64), ok));
  const bad: [object, RegExp][] = [
    [{}, /exactly one/],
    [{ neuron: 1, direction: new Array(10).fill(1) }, /exactly one/],
    [{ neuron: 10 }, /out of range/],
    [{ neuron: -1 }, /out of range/],
    [{ direction: [1, 2] }, /10 neurons/],
    [{ direction: [...new Array(9).fill(0), Infinity] }, /finite/],
    [{ direction: new Array(10).fill(0) }, /zeros/],
    [{ neuron: 1, length: 0 }, /length/],
    [{ neuron: 1, length: 17 }, /length/],
    [{ neuron: 1, steps: 1e9 }, /steps/],
    [{ neuron: 1, batch: 100000 }, /batch/],
    [{ neuron: 1, timeLimitS: 1e6 }, /timeLimitS/],
    [{ neuron: 1, startText: ' ' }, /startText/],
  ];
  for (const [body, message] of bad) {
    t.throws(() => normaliseRequest(body, 10), { statusCode: 400, message }, JSON.stringify(body));
  }
});
