/**
 * The few numbers a text layout needs from a TrueType file, read straight from its tables: units per
 * em and line pitch (head, hhea), and for each code point its glyph's advance (hmtx) and outline box
 * (cmap (3,10) format 12 → loca → glyf). Used by raster.ts, whose layout must match the Python
 * reference's to the font unit; no shaping, kerning or hinting.
 */

export interface Glyph {
  advance: number;
  /** xMin, yMin, xMax, yMax in font units; undefined for a glyph without outline (space). */
  box?: [number, number, number, number];
}

/** What the layout needs from the TrueType file: head, hhea, hmtx, cmap (3,10) format 12, loca, glyf. */
export interface FontMetrics {
  unitsPerEm: number;
  pitch: number;
  glyph(codePoint: number): Glyph | undefined;
}

export function readFontMetrics(bytes: Buffer): FontMetrics {
  const tables = new Map<string, number>();
  for (let i = 0, n = bytes.readUInt16BE(4); i < n; i++) {
    const record = 12 + 16 * i;
    tables.set(bytes.toString('latin1', record, record + 4), bytes.readUInt32BE(record + 8));
  }
  const table = (tag: string) => {
    const offset = tables.get(tag);
    if (offset === undefined) throw new Error(`font has no '${tag}' table`);
    return offset;
  };
  const head = table('head');
  const hhea = table('hhea');
  const hmtx = table('hmtx');
  const loca = table('loca');
  const glyf = table('glyf');
  const unitsPerEm = bytes.readUInt16BE(head + 18);
  const longLoca = bytes.readInt16BE(head + 50) === 1;
  const pitch = bytes.readInt16BE(hhea + 4) - bytes.readInt16BE(hhea + 6) + bytes.readInt16BE(hhea + 8);
  const hMetrics = bytes.readUInt16BE(hhea + 34);

  const groups = cmapGroups(bytes, table('cmap'));
  const glyphId = (cp: number) => {
    let lo = 0;
    let hi = groups.length / 3 - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (cp < groups[mid * 3]) hi = mid - 1;
      else if (cp > groups[mid * 3 + 1]) lo = mid + 1;
      else return groups[mid * 3 + 2] + cp - groups[mid * 3];
    }
    return 0;
  };
  const locaAt = (i: number) =>
    longLoca ? bytes.readUInt32BE(loca + 4 * i) : 2 * bytes.readUInt16BE(loca + 2 * i);
  return {
    unitsPerEm,
    pitch,
    glyph(cp) {
      const id = glyphId(cp);
      if (id === 0) return undefined;
      const advance = bytes.readUInt16BE(hmtx + 4 * Math.min(id, hMetrics - 1));
      const start = locaAt(id);
      if (locaAt(id + 1) === start) return { advance };
      const g = glyf + start;
      const box = [2, 4, 6, 8].map((o) => bytes.readInt16BE(g + o)) as Glyph['box'];
      return { advance, box };
    },
  };
}

/** The (3,10) format-12 subtable as flat [startChar, endChar, startGlyph] triples. */
function cmapGroups(bytes: Buffer, cmap: number): Uint32Array {
  for (let i = 0, n = bytes.readUInt16BE(cmap + 2); i < n; i++) {
    const record = cmap + 4 + 8 * i;
    const sub = cmap + bytes.readUInt32BE(record + 4);
    const isUnicodeFull = bytes.readUInt16BE(record) === 3 && bytes.readUInt16BE(record + 2) === 10;
    if (isUnicodeFull && bytes.readUInt16BE(sub) === 12) {
      const count = bytes.readUInt32BE(sub + 12);
      const groups = new Uint32Array(count * 3);
      for (let k = 0; k < count * 3; k++) groups[k] = bytes.readUInt32BE(sub + 16 + 4 * k);
      return groups;
    }
  }
  throw new Error('font has no (3,10) format-12 cmap');
}
