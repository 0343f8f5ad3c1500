/**
 * `npm run index-words`: builds the word index of MODEL_DIR into DATA_DIR (and the shared cache
 * when REDIS_URL is set), with a progress bar on stderr: redrawn in place on a terminal, plain
 * lines otherwise. Ctrl-C stops after the current chunk is safe; running it again resumes.
 *
 *   npm run index-words [-- --words FILE] [--size N] [--batch N]
 */
import { parseArgs } from 'node:util';
import { createCache } from '../cache/index.js';
import { ClipModel } from '../clip/clip-model.js';
import { loadConfig } from '../config.js';
import { DEFAULT_CHUNK_SIZE } from '../words/index-builder.js';
import { ProgressPrinter } from '../words/progress.js';
import { loadWordSettings } from '../words/settings.js';
import { createWordService } from '../words/setup.js';

const { values } = parseArgs({
  options: {
    words: { type: 'string' },
    size: { type: 'string' },
    batch: { type: 'string' },
  },
});

const env = { ...process.env };
if (values.words) env.WORD_VOCAB_FILE = values.words;
if (values.size) env.WORD_VOCAB_SIZE = values.size;
if (values.batch) env.WORD_INDEX_BATCH = values.batch;

const quietLogger = {
  info: () => undefined,
  warn: (obj: object | string, msg?: string) => console.error('warning:', msg ?? obj),
  error: (obj: object | string, msg?: string) => console.error('error:', msg ?? obj),
};

async function main(): Promise<number> {
  const config = loadConfig(env);
  const settings = loadWordSettings(env);
  const model = await ClipModel.load(config.modelDir, {
    ...config,
    warn: (m) => console.error('warning:', m),
  });
  const cache = createCache({
    redisUrl: config.redisUrl,
    ttlSeconds: config.cacheTtlSeconds,
    logger: quietLogger,
  });
  const words = await createWordService({
    model,
    dataDir: config.dataDir,
    settings,
    cache,
    log: quietLogger,
  });
  try {
    const { vocabulary } = words;
    console.error(
      `model ${model.name} (${model.sha256.slice(0, 12)}), ${vocabulary.words.length} words (${vocabulary.source})`,
    );
    if (await words.load()) {
      console.error(`the index is already built: ${words.store.file('.f32')}`);
      return 0;
    }
    const printer = new ProgressPrinter(process.stderr);
    let interrupted = false;
    process.once('SIGINT', () => {
      interrupted = true;
      process.stderr.write('\ninterrupted: stopping after the chunk being written\n');
      void words.stop();
    });
    words.startBuild({
      onProgress: (p) => printer.update(p),
    });
    await words.settled();
    printer.finish();
    const status = words.status();
    if (interrupted && status.state !== 'ready') {
      const saved = await words.store.readPartial(
        vocabulary.words.length,
        model.neuronCount,
        DEFAULT_CHUNK_SIZE,
      );
      console.error(
        `stopped: ${saved} of ${vocabulary.words.length} words are saved; run the command again to resume`,
      );
      return 130;
    }
    if (status.state !== 'ready') {
      console.error(`index not built: ${status.error ?? status.state}`);
      return 1;
    }
    console.error(
      `done: ${words.store.file('.f32')} (${status.builtAt})${cache.backend === 'redis' ? ', shared in Redis' : ''}`,
    );
    return 0;
  } finally {
    await words.close();
    await cache.close();
    await model.release();
  }
}

main().then(
  (code) => process.exit(code),
  (error: Error) => {
    console.error(error.message);
    process.exit(1);
  },
);
