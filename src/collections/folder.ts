/**
 * Images of a folder or an archive, each with its category and caption: one rule for the CLI
 * (`npm run collect`), folders on the server (POST /v1/collections/{id}/directory, under
 * COLLECTIONS_ROOT), uploaded archives and the embedded model's probe collection.
 *
 * The rule:
 * - a `manifest.csv` at the top (a header naming `file`, and optionally `category` and `caption`;
 *   `file` relative to the top) lists the images and gives their categories and captions; files
 *   it does not list are not added;
 * - otherwise every image is added and its category is the name of the folder that holds it
 *   (`cat/1.png` is a "cat", also inside a wrapping folder: `pets/cat/1.png` is a "cat"; the
 *   ImageFolder layout of ImageNet-style data); files at the top have none.
 * In a folder, images are the files with an image extension (IMAGE_EXTENSIONS); an archive's files
 * all go to the build, which skips those that do not decode and lists them in its report.
 *
 * With a `root` (the server's COLLECTIONS_ROOT), nothing outside it is read: the folder itself,
 * every file a manifest names and every file found are resolved through their links and refused
 * with a 403 when they lie outside; links met while walking a folder are not followed.
 */
import { lstat, readdir, readFile, realpath } from 'node:fs/promises';
import path from 'node:path';
import { badRequest, HttpError, notFound } from '../errors.js';

export const MANIFEST_FILE = 'manifest.csv';

export const IMAGE_EXTENSIONS: readonly string[] = [
  '.png',
  '.jpg',
  '.jpeg',
  '.webp',
  '.gif',
  '.bmp',
  '.tif',
  '.tiff',
  '.avif',
];
const IMAGE_EXTENSION_SET = new Set(IMAGE_EXTENSIONS);

export function hasImageExtension(name: string): boolean {
  return IMAGE_EXTENSION_SET.has(path.extname(name).toLowerCase());
}

/** The category of a file by its path below the top ('/'-separated): its folder's name, or null. */
export function categoryOfPath(relative: string): string | null {
  const parts = relative.split('/').filter((part) => part !== '' && part !== '.');
  return parts.length >= 2 ? parts[parts.length - 2] : null;
}

export interface ManifestRow {
  /** As written in the manifest: relative to the top. */
  file: string;
  category: string | null;
  caption: string | null;
}

/** Parses manifest.csv (RFC 4180 quoting, a header naming `file` and optionally `category`, `caption`). */
export function parseManifest(text: string, where = MANIFEST_FILE): ManifestRow[] {
  const rows = splitCsv(text.replace(/^\uFEFF/, '')).filter((row) => row.some((cell) => cell.trim() !== ''));
  const header = rows.shift()?.map((name) => name.trim().toLowerCase()) ?? [];
  const fileColumn = header.indexOf('file');
  if (fileColumn < 0) {
    throw badRequest(`${where}: the header must name a "file" column (file,category,caption)`);
  }
  const categoryColumn = header.indexOf('category');
  const captionColumn = header.indexOf('caption');
  const cell = (row: string[], column: number) => {
    const value = column >= 0 ? (row[column] ?? '').trim() : '';
    return value === '' ? null : value;
  };
  return rows.map((row, i) => {
    const file = cell(row, fileColumn);
    if (file === null) throw badRequest(`${where}: line ${i + 2} names no file`);
    return { file, category: cell(row, categoryColumn), caption: cell(row, captionColumn) };
  });
}

function splitCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
    } else cell += c;
  }
  if (cell !== '' || row.length > 0) {
    row.push(cell);
    rows.push(row);
  }
  return rows;
}

/** A file to add: where it is, the name it gets in the collection, its category and caption. */
export interface FoundImage {
  path: string;
  name: string;
  category: string | null;
  caption: string | null;
}

export interface FolderListing {
  images: FoundImage[];
  /** True when manifest.csv gave the list. */
  manifest: boolean;
  /** Files passed over: no image extension, or (with a root) links, which are not followed. */
  ignored: number;
}

export interface FolderOptions {
  /** Nothing outside this folder is read (403); links met while walking are not followed. */
  root?: string;
  /** The name of the root in messages (e.g. "COLLECTIONS_ROOT"). */
  rootName?: string;
}

const outside = (what: string, rootName: string) =>
  new HttpError(403, `${what} lies outside ${rootName}; only folders under ${rootName} may be read`);

function inside(file: string, root: string): boolean {
  const relative = path.relative(root, file);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}

/**
 * Resolves a folder asked for by a client against a root: a relative path is taken below the root,
 * an absolute one must lie in it. 403 when it (or, through links, its real place) is outside the
 * root, 404 when it does not exist, 400 when it is not a folder. Returns the real path.
 */
export async function resolveUnderRoot(root: string, asked: string, rootName: string): Promise<string> {
  if (asked.includes('\0')) throw badRequest('directory must not contain NUL characters');
  const realRoot = await realpath(root).catch(() => {
    throw new HttpError(403, `${rootName} (${root}) does not exist on the server`);
  });
  const wanted = path.resolve(realRoot, asked);
  if (!inside(wanted, realRoot) && !inside(path.resolve(root, asked), path.resolve(root))) {
    throw outside(`directory "${asked}"`, rootName);
  }
  let real: string;
  try {
    real = await realpath(path.isAbsolute(asked) ? asked : wanted);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT')
      throw notFound(`directory "${asked}" not found under ${rootName}`);
    throw badRequest(`directory "${asked}" cannot be read (${(error as NodeJS.ErrnoException).code})`);
  }
  if (!inside(real, realRoot)) throw outside(`directory "${asked}" (through a link)`, rootName);
  const info = await lstat(real);
  if (!info.isDirectory()) throw badRequest(`"${asked}" is not a directory`);
  return real;
}

/** The images under `dir` (sorted by name), each with its category and caption by the rule above. */
export async function readFolder(dir: string, options: FolderOptions = {}): Promise<FolderListing> {
  const rootName = options.rootName ?? 'the root';
  const root = options.root !== undefined ? await realpath(options.root) : undefined;
  const top = await realpath(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') throw notFound(`directory "${dir}" not found`);
    throw error;
  });
  if (root !== undefined && !inside(top, root)) throw outside(`directory "${dir}"`, rootName);

  let text: string | undefined;
  try {
    const manifestPath = path.join(top, MANIFEST_FILE);
    if (root !== undefined && (await lstat(manifestPath)).isSymbolicLink()) {
      if (!inside(await realpath(manifestPath), root)) throw outside(MANIFEST_FILE, rootName);
    }
    text = await readFile(manifestPath, 'utf8');
  } catch (error) {
    if (error instanceof HttpError) throw error;
    text = undefined;
  }
  if (text !== undefined) {
    const images: FoundImage[] = [];
    for (const row of parseManifest(text)) {
      const file = path.resolve(top, row.file);
      let real: string;
      try {
        real = await realpath(file);
      } catch {
        throw notFound(`${MANIFEST_FILE} names "${row.file}", which is not there`);
      }
      if (root !== undefined && !inside(real, root)) {
        throw outside(`"${row.file}" (named in ${MANIFEST_FILE})`, rootName);
      }
      if (!(await lstat(real)).isFile()) throw badRequest(`${MANIFEST_FILE} names "${row.file}", not a file`);
      images.push({ path: real, name: path.relative(top, file).split(path.sep).join('/'), ...row });
    }
    return { images, manifest: true, ignored: 0 };
  }

  const images: FoundImage[] = [];
  let ignored = 0;
  const walk = async (folder: string, relative: string) => {
    const entries = await readdir(folder, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const file = path.join(folder, entry.name);
      const name = relative === '' ? entry.name : `${relative}/${entry.name}`;
      if (entry.isDirectory()) await walk(file, name);
      else if (entry.isFile() && hasImageExtension(entry.name)) {
        images.push({ path: file, name, category: categoryOfPath(name), caption: null });
      } else if (entry.isSymbolicLink() && root === undefined) {
        // The CLI follows links (a local user's own files); the server does not.
        const target = await realpath(file).catch(() => undefined);
        const info = target !== undefined ? await lstat(target) : undefined;
        if (info?.isFile() && hasImageExtension(entry.name)) {
          images.push({ path: target as string, name, category: categoryOfPath(name), caption: null });
        } else ignored++;
      } else ignored++;
    }
  };
  await walk(top, '');
  return { images, manifest: false, ignored };
}

/** Entries of an archive (or any named files), labelled by the rule above. */
export interface NamedFile {
  name: string;
  bytes: Buffer;
}

export interface LabelledFile extends NamedFile {
  category: string | null;
  caption: string | null;
}

/**
 * Labels an archive's entries: by its top-level manifest.csv when it has one (which then lists the
 * files; 400 for a listed file the archive lacks), else each by its folder.
 */
export function labelEntries(entries: readonly NamedFile[]): LabelledFile[] {
  const manifest = entries.find((entry) => entry.name === MANIFEST_FILE);
  if (!manifest) {
    return entries.map((entry) => ({ ...entry, category: categoryOfPath(entry.name), caption: null }));
  }
  const byName = new Map(entries.map((entry) => [entry.name, entry]));
  return parseManifest(manifest.bytes.toString('utf8')).map((row) => {
    const name = path.posix.normalize(row.file.replace(/\\/g, '/')).replace(/^\.\//, '');
    const entry = byName.get(name);
    if (!entry || name === MANIFEST_FILE) {
      throw badRequest(`${MANIFEST_FILE} names "${row.file}", which is not in the archive`);
    }
    return { name, bytes: entry.bytes, category: row.category, caption: row.caption };
  });
}
