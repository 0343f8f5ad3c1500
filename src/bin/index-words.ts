/**
 * `npm run index-words`: builds the word index of MODEL_DIR into DATA_DIR (and the shared cache
 * when REDIS_URL is set), with a progress bar on stderr: redrawn in place on a terminal, plain
 * lines otherwise. Ctrl-C stops after the current chunk is safe; running it again resumes.
 *
 *   npm run index-words [-- --words FILE] [--size N] [--batch N]   (--help: usage; an unknown
 *   option is reported and ignored)
 */
import { parseArgs } from 'node:util';
import { createCache } from '../cache/index.js';
import { ClipModel } from '../clip/clip-model.js';
import { loadConfig } from '../config.js';
import { DEFAULT_CHUNK_SIZE } from '../words/index-builder.js';
import { ProgressPrinter } from '../words/progress.js';
import { loadWordSettings } from '../words/settings.js';
import { createWordService } from '../words/setup.js';

const USAGE = `usage: npm run index-words [-- [--words FILE] [--size N] [--batch N]]

Builds the word index of MODEL_DIR into DATA_DIR (and the shared cache when REDIS_URL is set).
Ctrl-C stops after the current chunk is safe; running the command again resumes.

  --words FILE   a word list, one word a line (sets WORD_VOCAB_FILE)
  --size N       English words in the default vocabulary (sets WORD_VOCAB_SIZE)
  --batch N      words per trunk run while building (sets WORD_INDEX_BATCH)
  -h, --help     print this and exit
`;

const { values, tokens } = parseArgs({
  options: {
    words: { type: 'string' },
    size: { type: 'string' },
    batch: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
  // Not strict: an unknown option or argument is reported as ignored below, not a TypeError stack.
  strict: false,
  allowPositionals: true,
  tokens: true,
});

const known = new Set(['words', 'size', 'batch', 'help']);
for (const token of tokens) {
  if (token.kind === 'option' && !known.has(token.name)) {
    console.error(`warning: ignoring unknown option ${token.rawName} (see --help)`);
  } else if (token.kind === 'option' && token.name !== 'help' && typeof token.value !== 'string') {
    console.error(`warning: ignoring ${token.rawName}: it needs a value (see --help)`);
  } else if (token.kind === 'positional') {
    console.error(`warning: ignoring argument "${token.value}" (see --help)`);
  }
}
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const option = (name: 'words' | 'size' | 'batch') =>
  typeof values[name] === 'string' ? values[name] : undefined;

const env = { ...process.env };
if (option('words')) env.WORD_VOCAB_FILE = option('words');
if (option('size')) env.WORD_VOCAB_SIZE = option('size');
if (option('batch')) env.WORD_INDEX_BATCH = option('batch');

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
