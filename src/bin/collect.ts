/**
 * `npm run collect -- DIR --name NAME`: builds an image collection of MODEL_DIR from a local folder
 * into DATA_DIR (where the service finds it, src/collections/), with a progress bar on stderr.
 *
 * Sub-folder names are categories (the ImageFolder convention of ImageNet-style data: DIR/cat/1.jpg
 * is in category "cat"; files directly in DIR have none). A `manifest.csv` in DIR, with a header
 * `file,category,caption` (file relative to DIR), gives categories and captions instead. Files with
 * an image extension are sent; the build skips what does not decode and lists it. Adding to an
 * existing collection of that name adds the images (duplicates are stored once). Ctrl-C stops after
 * the batch being written; running the command again resumes.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ClipModel } from '../clip/clip-model.js';
import { CollectionService, type Upload } from '../collections/service.js';
import { loadCollectionSettings } from '../collections/settings.js';
import { CollectionStore, collectionIdOf } from '../collections/store.js';
import { loadConfig } from '../config.js';
import { ProgressPrinter } from '../words/progress.js';

const USAGE = `usage: npm run collect -- DIR --name NAME

Builds the image collection NAME of MODEL_DIR into DATA_DIR from the images under DIR. Sub-folder
names are categories (DIR/cat/1.jpg is a "cat"); a manifest.csv in DIR (file,category,caption) gives
categories and captions instead. Adding to an existing collection adds the images.

  --name NAME    the collection's name (its id is made from it)
  -h, --help     print this and exit
`;

const IMAGE_EXTENSIONS = new Set([
  '.png',
  '.jpg',
  '.jpeg',
  '.webp',
  '.gif',
  '.bmp',
  '.tif',
  '.tiff',
  '.avif',
]);
/** Uploads staged per call: bounds the bytes held in memory at once. */
const STAGE_BATCH = 64;

interface Found {
  file: string;
  category: string | null;
  caption: string | null;
}

/** The images under `dir`, each with its category (the first sub-folder) unless a manifest says. */
async function findImages(dir: string): Promise<Found[]> {
  const listed = await readManifest(dir);
  if (listed) return listed;
  const found: Found[] = [];
  const walk = async (folder: string, category: string | null) => {
    const entries = await readdir(folder, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const file = path.join(folder, entry.name);
      if (entry.isDirectory()) await walk(file, category ?? entry.name);
      else if (entry.isFile() && IMAGE_EXTENSIONS.has(path.extname(entry.name).toLowerCase()))
        found.push({ file, category, caption: null });
    }
  };
  await walk(dir, null);
  return found;
}

/** manifest.csv: a header naming `file` and optionally `category` and `caption`; simple quoting. */
async function readManifest(dir: string): Promise<Found[] | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(dir, 'manifest.csv'), 'utf8');
  } catch {
    return undefined;
  }
  const rows = text
    .split(/\r?\n/)
    .filter((line) => line.trim() !== '')
    .map(splitCsvLine);
  const header = rows.shift()?.map((name) => name.trim().toLowerCase()) ?? [];
  const column = (name: string) => header.indexOf(name);
  if (column('file') < 0) throw new Error(`${dir}/manifest.csv: the header must name a "file" column`);
  return rows.map((row) => ({
    file: path.resolve(dir, row[column('file')]),
    category: column('category') >= 0 ? row[column('category')] || null : null,
    caption: column('caption') >= 0 ? row[column('caption')] || null : null,
  }));
}

function splitCsvLine(line: string): string[] {
  const cells: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted && c === '"' && line[i + 1] === '"') {
      cell += '"';
      i++;
    } else if (c === '"') quoted = !quoted;
    else if (c === ',' && !quoted) {
      cells.push(cell);
      cell = '';
    } else cell += c;
  }
  cells.push(cell);
  return cells;
}

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
  const found = await findImages(path.resolve(dir));
  if (found.length === 0) {
    console.error(`no images under ${dir} (extensions: ${[...IMAGE_EXTENSIONS].join(' ')})`);
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
    config.maxImagePixels,
    loadCollectionSettings(process.env),
    log,
  );
  try {
    const id = collectionIdOf(name);
    const exists = await service.get(id).then(
      () => true,
      () => false,
    );
    if (!exists) await service.create(name, 'cli');
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
    for (let i = 0; i < found.length && !interrupted; i += STAGE_BATCH) {
      const uploads: Upload[] = await Promise.all(
        found.slice(i, i + STAGE_BATCH).map(async ({ file, category, caption }) => ({
          name: path.relative(path.resolve(dir), file),
          bytes: await readFile(file),
          category,
          caption,
        })),
      );
      await service.addImages(id, uploads);
      await report();
    }
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
