/**
 * Text → neuron attribution on the embedded model (models/toyworld), over HTTP: for the words of
 * its colours and expressions, the neurons that carry them (the top of W·t/|t|) include a neuron
 * the catalogue labels with that very concept. The catalogue (neurons.json) is independent of the
 * text side: tools/toyworld/evaluate.py labels each neuron by the held-out images that activate it
 * most (patches, faces, shapes, rendered words). Thresholds: models/toyworld/README.md.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { buildTestApp } from './helpers/app.js';
import { repoRoot } from './helpers/tiny-model.js';

const TOYWORLD = path.join(repoRoot, 'models/toyworld');
const FAMILIES = {
  colour: ['red', 'orange', 'yellow', 'green', 'blue', 'purple', 'pink', 'brown'],
  expression: ['happy', 'sad', 'surprised', 'angry', 'sleepy'],
};
/** How deep in the ranking the concept's own neuron must be, and for how many concepts. */
const TOP_K = 5;
/**
 * Measured on the committed model: 8/8 colours, 5/5 expressions. Its neurons are on a common scale
 * (tools/toyworld/gauge.py: each answers its preferred concept at 1); before that, a few barely
 * active neurons with long rows of W topped every colour word, and 3/8 colours passed.
 */
const MIN_FOUND = { colour: 7, expression: 5 };

interface Ranked {
  neuron: number;
  value: number;
  label?: string;
}

t.test('colour and expression words: their own neurons come out on top', async (t) => {
  const app = await buildTestApp({ modelDir: TOYWORLD });
  t.teardown(() => app.close());
  const catalogue = JSON.parse(readFileSync(path.join(TOYWORLD, 'neurons.json'), 'utf8')) as Record<
    string,
    { label: string; family: string }
  >;
  for (const [family, words] of Object.entries(FAMILIES)) {
    const response = await app.inject({
      method: 'POST',
      url: '/v1/attribution/text',
      payload: { texts: words, topK: TOP_K },
    });
    t.equal(response.statusCode, 200);
    const found: string[] = [];
    for (const result of response.json().results as { text: string; top: Ranked[] }[]) {
      const own = result.top.findIndex((entry) => catalogue[entry.neuron]?.label === result.text);
      t.comment(
        `${result.text}: ${result.top.map((e) => `${e.neuron} ${catalogue[e.neuron]?.label}`).join(', ')}` +
          (own >= 0 ? ` (own neuron at rank ${own + 1})` : ''),
      );
      if (own >= 0) found.push(result.text);
      t.equal(
        result.top[0].label,
        catalogue[result.top[0].neuron]?.label,
        'the response carries the catalogue label',
      );
    }
    const min = MIN_FOUND[family as keyof typeof MIN_FOUND];
    t.ok(
      found.length >= min,
      `${family}: ${found.length}/${words.length} words have a neuron labelled with them in their top ${TOP_K} (>= ${min})`,
    );
  }
});
