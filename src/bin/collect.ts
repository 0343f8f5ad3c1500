/**
 * `npm run collect -- DIR --name NAME`: builds an image collection of MODEL_DIR from a local folder
 * into DATA_DIR (where the service finds it, src/collections/), with a progress bar on stderr.
 *
 * The images and their categories are found by the one rule of src/collections/folder.ts, which the
 * server's folders and uploaded archives follow too: a `manifest.csv` in DIR, with a header
 * `file,category,caption` (file relative to DIR), lists the images with their categories and
 * captions; without one, every file with an image extension is sent and the name of the folder
 * holding it is its category (the ImageFolder convention of ImageNet-style data: DIR/cat/1.jpg is a
 * "cat"; files directly in DIR have none). The build skips what does not decode and lists it.
 * Adding to an existing collection of that name adds the images (duplicates are stored once).
 * Ctrl-C stops after the batch being written; running the command again resumes.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ClipModel } from '../clip/clip-model.js';
import { boundedDecode } from '../clip/encoders.js';
import { Semaphore } from '../clip/semaphore.js';
import { addFolderImages } from '../collections/directory.js';
import { IMAGE_EXTENSIONS, readFolder } from '../collections/folder.js';
import { CollectionService } from '../collections/service.js';
import { loadCollectionSettings } from '../collections/settings.js';
import { CollectionStore, collectionIdOf } from '../collections/store.js';
import { loadConfig } from '../config.js';
import { ProgressPrinter } from '../words/progress.js';

const USAGE = `usage: npm run collect -- DIR --name NAME

Builds the image collection NAME of MODEL_DIR into DATA_DIR from the images under DIR. Sub-folder
names are categories (the folder holding an image: DIR/cat/1.jpg is a "cat"); a manifest.csv in DIR
(file,category,caption) lists the images with categories and captions instead. Adding to an
existing collection adds the images.

  --name NAME    the collection's name (its id is made from it)
  -h, --help     print this and exit
`;

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    options: { name: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const dir = positionals[0];
  const name = values.name;
  if (!dir || !name || positionals.length > 1) {
    process.stderr.write(USAGE);
    return 2;
  }
  let found;
  try {
    found = (await readFolder(path.resolve(dir))).images;
  } catch (error) {
    console.error((error as Error).message);
    return 1;
  }
  if (found.length === 0) {
    console.error(`no images under ${dir} (extensions: ${IMAGE_EXTENSIONS.join(' ')})`);
    return 1;
  }
  const config = loadConfig(process.env);
  const model = await ClipModel.load(config.modelDir, {
    ...config,
    warn: (m) => console.error('warning:', m),
  });
  const { manifest } = model.directory;
  const log = {
    info: () => undefined,
    warn: (object: object, message: string) => console.error(message, object),
  };
  const service = new CollectionService(
    new CollectionStore(config.dataDir),
    model,
    { imageSize: manifest.image_size, mean: manifest.mean, std: manifest.std },
    boundedDecode(new Semaphore(config.imageDecodeConcurrency), config.maxImagePixels),
    loadCollectionSettings(process.env),
    log,
  );
  try {
    const id = collectionIdOf(name);
    const exists = await service.get(id).then(
      () => true,
      () => false,
    );
    if (!exists) await service.create(name, 'cli', true);
    console.error(
      `collection "${id}" (${exists ? 'adding to it' : 'new'}): ${found.length} images from ${dir}`,
    );
    let interrupted = false;
    process.once('SIGINT', () => {
      interrupted = true;
      process.stderr.write('\ninterrupted: stopping after the batch being written\n');
      void service.stop();
    });
    const printer = new ProgressPrinter(process.stderr, 200, Date.now, 'images');
    const started = Date.now();
    const report = async () => {
      const { build } = await service.get(id);
      const seconds = (Date.now() - started) / 1000;
      const rate = seconds > 0 ? build.done / seconds : 0;
      printer.update({
        phase: 'activations',
        done: build.done,
        total: Math.max(build.total, build.done),
        wordsPerSecond: rate,
        etaSeconds: rate > 0 ? (build.total - build.done) / rate : null,
        resumedFrom: build.resumedFrom,
        elapsedSeconds: seconds,
      });
    };
    await addFolderImages(service, id, found, { onBatch: report, keepGoing: () => !interrupted });
    const timer = setInterval(() => void report(), 200);
    await service.settled(id);
    clearInterval(timer);
    await report();
    printer.finish();
    const done = await service.get(id);
    const { build } = done;
    console.error(
      `${done.images} images indexed in ${done.categories.length} categories; this build: ${build.state}, ` +
        `${build.skipped.length} skipped (not images), ${build.duplicates.length} duplicates`,
    );
    for (const skipped of build.skipped) console.error(`  skipped ${JSON.stringify(skipped)}`);
    if (interrupted) {
      console.error('stopped: run the command again to resume');
      return 130;
    }
    return build.state === 'completed' ? 0 : 1;
  } finally {
    await service.stop();
    await model.release();
  }
}

process.exitCode = await main();
