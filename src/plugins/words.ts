/**
 * app.words: image-based word embeddings of the loaded model (src/words/). At start the index is
 * loaded from the data directory or the shared cache; when neither has it and the vocabulary is
 * small (the model's words.txt, or fewer than 5,000 words), it is built in the background.
 * Settings: WORD_* variables (src/words/settings.ts).
 */
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import type { WordService } from '../words/service.js';
import { loadWordSettings } from '../words/settings.js';
import { createWordService } from '../words/setup.js';

declare module 'fastify' {
  interface FastifyInstance {
    words: WordService;
  }
}

const wordsPlugin: FastifyPluginAsync<{ config: Config }> = async (app, { config }) => {
  const words = await createWordService({
    model: app.clip,
    dataDir: config.dataDir,
    settings: loadWordSettings(),
    cache: app.cache,
    log: app.log,
  });
  app.decorate('words', words);
  const loaded = await words.load();
  const { vocabulary } = words;
  app.log.info(
    { words: vocabulary.words.length, source: vocabulary.source, loaded, autoBuild: words.autoBuild },
    loaded ? 'word index loaded' : 'no word index yet',
  );
  if (!loaded && words.autoBuild) app.addHook('onReady', async () => void words.startBuild());
  // preClose (before the server stops): a running build stops, so that it cannot hold the model.
  // The query session is released only in onClose, once the server has answered every request in
  // flight: released in preClose, word queries still running failed with "Session already disposed".
  app.addHook('preClose', async () => words.stop());
  app.addHook('onClose', async () => words.close());
};

export default fp(wordsPlugin, { name: 'words', dependencies: ['model', 'cache'] });
