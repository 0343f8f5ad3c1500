/**
 * Issue 22's levers in the model card: the section "What each lever did" of models/toyworld/README.md
 * is what tools/toyworld/card.py writes from docs/toyworld-v2/levers.json and the metrics files
 * beside it (a card edited by hand, or a run added without regenerating it, fails here), and every
 * run's metrics were measured where levers.json says: labels and scales calibrated on seed 7, the
 * figures on the seed each file is filed under, through the gauged evaluation.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { PYTHON, repoRoot } from './helpers/tiny-model.js';

const LEVERS_DIR = path.join(repoRoot, 'docs/toyworld-v2');

interface Levers {
  runs: { id: string; run: string; metrics: Record<string, string> }[];
  findings: string[];
}
const levers = JSON.parse(readFileSync(path.join(LEVERS_DIR, 'levers.json'), 'utf8')) as Levers;

t.test('the card holds the section card.py writes from levers.json', async (t) => {
  const section = execFileSync(
    PYTHON,
    ['-c', 'from tools.toyworld.card import levers_section; print("\\n".join(levers_section()))'],
    { cwd: repoRoot, encoding: 'utf8', env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } },
  ).trimEnd();
  t.match(section, /^<!-- levers: written by tools\/toyworld\/card.py/, 'a section was written');
  const card = readFileSync(path.join(repoRoot, 'models/toyworld/README.md'), 'utf8');
  t.ok(card.includes(section), 'models/toyworld/README.md holds it verbatim (card.py --levers-section)');
  const rows = section.split('\n').filter((line) => /^\| (?!run \||---)/.test(line));
  const files = levers.runs.reduce((n, run) => n + Object.keys(run.metrics).length, 0);
  t.equal(rows.length, files, 'one table row per run and seed');
  t.ok(levers.findings.length > 0, 'with what each lever did');
});

t.test('every run is measured on the seed it is filed under, calibrated on seed 7', async (t) => {
  t.ok(
    levers.runs.some((run) => run.id === 'committed'),
    'the committed model is a row',
  );
  for (const run of levers.runs) {
    for (const [seed, file] of Object.entries(run.metrics)) {
      const metrics = JSON.parse(readFileSync(path.join(LEVERS_DIR, file), 'utf8')) as {
        seeds: { calibration: number; evaluation: number };
      };
      t.same(metrics.seeds, { calibration: 7, evaluation: Number(seed) }, `${run.id}: ${file}`);
    }
  }
});
