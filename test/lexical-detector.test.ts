/**
 * The lexical-neuron detector (src/words/lexical.ts) where the truth is known: on the embedded model,
 * a neuron is lexical by construction when it fires for rendered words but not for the pictures of the
 * words' concept (scripts/toyworld-lexical-truth.ts, from held-out renders of seed 12; the default
 * threshold was chosen on seed 11). Precision and recall at the default threshold on the model's own
 * vocabulary and on an English list, and the stability of the answer between the two; the floors are
 * the figures measured on 2026-12-06 (docs/lexical-neurons.md) less a margin.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_LEXICAL_THRESHOLD, lexicalNeurons, lexicalScore } from '../src/words/lexical.js';
import {
  detectorScores,
  precisionRecall,
  rocAuc,
  TOYWORLD,
  toyLexicalTruth,
} from '../scripts/toyworld-lexical-truth.js';

// Measured: own words 328 flagged, precision 0.646, recall 0.922, AUC 0.826; 3,000 English words
// (+ geographic, 3,893) 296 flagged, precision 0.679, recall 0.874, AUC 0.845; Jaccard of the two
// flagged sets 0.743 (266 in both).
const FLOORS = {
  own: { precision: 0.6, recall: 0.88, auc: 0.78 },
  english: { precision: 0.62, recall: 0.83, auc: 0.78 },
};
const ENGLISH_WORDS = 3000;

t.test(
  'lexical detection against the toy world’s truth',
  { skip: existsSync(path.join(TOYWORLD, 'clip.json')) ? false : 'no embedded model' },
  async (t) => {
    const truth = await toyLexicalTruth(TOYWORLD, { seed: 12 });
    t.comment(`truth: ${truth.lexical.length} of ${truth.neurons.length} lexical by construction`);
    t.ok(
      truth.lexical.length >= 200 && truth.lexical.length <= 260,
      `${truth.lexical.length} lexical (230 measured)`,
    );
    t.equal(truth.dead, 0);

    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'lexical-detector-'));
    t.teardown(() => rm(dataDir, { recursive: true, force: true }));
    const flagged: Record<string, number[]> = {};
    for (const [name, vocabulary] of [
      ['own', 'own'],
      ['english', ENGLISH_WORDS],
    ] as const) {
      const { scores } = await detectorScores(vocabulary, dataDir);
      t.equal(scores.method, 'ridge-cv-r2-spelling');
      flagged[name] = lexicalNeurons(scores, DEFAULT_LEXICAL_THRESHOLD);
      const pr = precisionRecall(flagged[name], truth.lexical);
      const auc = rocAuc(lexicalScore(scores), truth.lexical);
      t.comment(`${name}: ${JSON.stringify(pr)}, AUC ${auc.toFixed(3)}`);
      const floor = FLOORS[name];
      t.ok(
        pr.precision >= floor.precision,
        `${name}: precision ${pr.precision.toFixed(3)} ≥ ${floor.precision}`,
      );
      t.ok(pr.recall >= floor.recall, `${name}: recall ${pr.recall.toFixed(3)} ≥ ${floor.recall}`);
      t.ok(auc >= floor.auc, `${name}: ROC AUC ${auc.toFixed(3)} ≥ ${floor.auc}`);
    }
    // Stable: the same neurons whichever vocabulary the index has (was 1 against 292).
    const own = new Set(flagged.own);
    const both = flagged.english.filter((n) => own.has(n)).length;
    const jaccard = both / (own.size + flagged.english.length - both);
    const sizes = [flagged.own.length, flagged.english.length];
    t.comment(`flagged ${sizes.join(' / ')}, ${both} in both, Jaccard ${jaccard.toFixed(3)}`);
    t.ok(Math.min(...sizes) / Math.max(...sizes) >= 0.8, `flag counts ${sizes.join(' / ')} within 20 %`);
    t.ok(jaccard >= 0.68, `Jaccard ${jaccard.toFixed(3)} ≥ 0.68 (0.743 measured)`);
  },
);
