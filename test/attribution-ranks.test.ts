/**
 * AttributionService.textRanks remembers a text's top and bottom neurons with its vector's bytes:
 * the same vector gives the remembered ranks, and a different vector under the same key (here
 * written into the cache by hand) gives its own, never the remembered ones.
 */
import t from 'tap';
import { topAndBottom } from '../src/attribution/bilinear.js';
import { cacheKey } from '../src/cache/index.js';
import { buildTestApp } from './helpers/app.js';

const app = await buildTestApp();
t.teardown(() => app.close());

t.test('textRanks: remembered for the same bytes, recomputed for others', async (t) => {
  const service = app.attribution;
  const first = await service.textRanks('a red apple', 'unit', 3);
  t.same({ top: first.top, bottom: first.bottom }, topAndBottom(first.vector, 3));
  const again = await service.textRanks('a red apple', 'unit', 3);
  t.equal(again.top, first.top, 'the remembered ranks');
  t.same(Array.from(again.vector), Array.from(first.vector));
  const wider = await service.textRanks('a red apple', 'unit', 5);
  t.equal(wider.top.length, 5, 'topK is part of the key');

  // The same key now holds another vector (the first one reversed): its own ranks come back.
  const { ids } = service.model.tokenizer.encode('a red apple');
  const reversed = Float32Array.from(first.vector).reverse();
  await app.cache.setVector(cacheKey(service.model.sha256, 'attribution', 'unit', ids.join(',')), reversed);
  const changed = await service.textRanks('a red apple', 'unit', 3);
  t.same(Array.from(changed.vector), Array.from(reversed));
  t.same({ top: changed.top, bottom: changed.bottom }, topAndBottom(reversed, 3));
  t.not(changed.top[0].neuron, first.top[0].neuron);

  // Templates are never remembered: their ranks are those of the mean vector.
  const templated = await service.textRanks('apple', 'unit', 3, ['a photo of {}', 'a drawing of {}']);
  t.same({ top: templated.top, bottom: templated.bottom }, topAndBottom(templated.vector, 3));
});
