/**
 * Agreement with scikit-learn: the same standardised L1 logistic problems solved here and by
 * `LogisticRegression(penalty='l1', solver='liblinear' | 'saga', C = 1/(n·λ))` through
 * tools/solvers/compare_sklearn.py (Debian's /usr/bin/python3). Objectives agree (ours never higher
 * by more than 1e-6, sklearn's never higher by more than 1e-4) and the supports are the same.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { exportProblems, type ExportedProblem } from '../tools/solvers/export-problems.js';
import { repoRoot, runPython } from './helpers/tiny-model.js';

type Row = { name: string } & Record<string, { objective_minus_ours: number; support_jaccard: number }>;

const probe = await runPython(['-c', 'import sklearn']);
t.test(
  'objective and support agree with scikit-learn',
  { skip: probe.code !== 0 && 'no scikit-learn' },
  async (t) => {
    const folder = mkdtempSync(path.join(os.tmpdir(), 'sklearn-compare-'));
    t.teardown(() => rmSync(folder, { recursive: true, force: true }));
    const problems = exportProblems([
      [100, 50, 4, 0.3],
      [100, 50, 4, 0.05],
      [60, 400, 5, 0.2],
      [60, 400, 5, 0.05],
    ]);
    const script = path.join(repoRoot, 'tools/solvers/compare_sklearn.py');
    const compare = async (subset: ExportedProblem[], solver: string) => {
      const file = path.join(folder, `${solver}.json`);
      writeFileSync(file, JSON.stringify(subset));
      const result = await runPython([script, file, '--solvers', solver]);
      t.equal(result.code, 0, result.stderr);
      for (const row of JSON.parse(result.stdout) as Row[]) {
        const gap = row[solver].objective_minus_ours;
        t.ok(
          gap > -1e-6,
          `${row.name} ${solver}: F(sklearn) − F(ours) = ${gap.toExponential(2)} (ours not higher)`,
        );
        t.ok(gap < 1e-4, `${row.name} ${solver}: within 1e-4`);
        t.equal(row[solver].support_jaccard, 1, `${row.name}: same support as ${solver}`);
      }
    };
    // liblinear on every problem; saga (slow to converge tightly when n < p) on the n > p ones.
    await compare(problems, 'liblinear');
    await compare(problems.slice(0, 2), 'saga');
  },
);
