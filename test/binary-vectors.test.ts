/**
 * The binary forms of the vector routes (src/routes/binary-vectors.ts): Accept negotiation, the
 * headers, and the bodies read back by Debian's numpy (np.load for .npy, np.frombuffer for the raw
 * form) and compared bit for bit, as float32, with the JSON answer of the same request. On the
 * embedded model (models/toyworld).
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import fastJsonStringify from 'fast-json-stringify';
import { buildTestApp } from './helpers/app.js';
import { TOYWORLD_DIR } from './helpers/toyworld.js';
import { negotiate, npyHeader } from '../src/routes/binary-vectors.js';
import { HttpError } from '../src/errors.js';

const PYTHON = '/usr/bin/python3';
const NPY = 'application/x-npy';
const RAW = 'application/octet-stream';
const JSON_TYPE = 'application/json';

// Before the first subtest: a top-level await after one lets tap end the file's test when that
// subtest finishes first, and the later subtests are never run (seen on a slow machine).
const app = await buildTestApp({ modelDir: TOYWORLD_DIR });
t.teardown(() => app.close());

const png = await sharp({ create: { width: 80, height: 64, channels: 3, background: '#c03020' } })
  .composite([
    {
      input: await sharp({ create: { width: 30, height: 30, channels: 3, background: '#20a0f0' } })
        .png()
        .toBuffer(),
      left: 25,
      top: 17,
    },
  ])
  .png()
  .toBuffer();

t.test('Accept negotiation follows media ranges, q weights and wildcards', async (t) => {
  const cases: [string | undefined, string][] = [
    [undefined, JSON_TYPE],
    ['', JSON_TYPE],
    ['*/*', JSON_TYPE],
    ['application/*', JSON_TYPE],
    [JSON_TYPE, JSON_TYPE],
    [NPY, NPY],
    [RAW, RAW],
    ['Application/X-NPY', NPY],
    ['text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8', JSON_TYPE],
    [`${NPY}, ${JSON_TYPE}`, NPY],
    [`${JSON_TYPE}, ${NPY}`, JSON_TYPE],
    [`${JSON_TYPE};q=0.5, ${RAW}`, RAW],
    [`${JSON_TYPE};q=0, */*`, NPY],
    [`*/*;q=0.1, ${RAW};q=0.2`, RAW],
    [`${NPY}; q=0.9, ${RAW}`, RAW],
    [`application/json; charset=utf-8`, JSON_TYPE],
    ['nonsense, application/x-npy', NPY],
  ];
  for (const [accept, expected] of cases) t.equal(negotiate(accept), expected, `Accept: ${accept}`);
  for (const accept of ['text/html', 'image/png, text/*', `${JSON_TYPE};q=0`, 'nonsense', '*/*;q=0']) {
    let error: unknown;
    try {
      negotiate(accept);
    } catch (thrown) {
      error = thrown;
    }
    t.ok(error instanceof HttpError, `Accept: ${accept} is refused`);
    t.equal((error as HttpError).statusCode, 406, `Accept: ${accept} is a 406`);
    t.match((error as HttpError).message, /application\/json, application\/x-npy, application\/octet-stream/);
  }
});

t.test('the .npy header is format 1.0, padded to 64 bytes, ending in a newline', async (t) => {
  for (const shape of [[3], [64, 640], [1, 2560]]) {
    const header = npyHeader(shape);
    t.equal(header.length % 64, 0);
    t.same([...header.subarray(0, 8)], [0x93, 78, 85, 77, 80, 89, 1, 0]);
    t.equal(header[8]! + 256 * header[9]!, header.length - 10);
    t.equal(header.at(-1), 0x0a);
  }
});

interface Case {
  name: string;
  url: string;
  body: Record<string, unknown>;
  /** The JSON answer's values as rows, in the order of the binary form. */
  rows: (json: Record<string, unknown>) => number[][];
  /** The binary form's shape. */
  shape: number[];
}

const C = app.clip.neuronCount;
const D = app.clip.embedDim;
const texts = ['a red circle', 'a happy dog', 'blue'];
const cases: Case[] = [
  {
    name: 'embed-text',
    url: '/v1/embed/text',
    body: { texts },
    rows: (json) => json.embeddings as number[][],
    shape: [3, D],
  },
  {
    name: 'embed-image',
    url: '/v1/embed/image',
    body: { image: png.toString('base64') },
    rows: (json) => [json.embedding as number[]],
    shape: [D],
  },
  {
    name: 'embed-image-neurons',
    url: '/v1/embed/image?neurons=true',
    body: { image: png.toString('base64') },
    rows: (json) => [json.neurons as number[]],
    shape: [C],
  },
  {
    name: 'attribution-text',
    url: '/v1/attribution/text',
    body: { texts, full: true },
    rows: (json) => (json.results as { vector: number[] }[]).map((result) => result.vector),
    shape: [3, C],
  },
  {
    name: 'attribution-text-none-templates',
    url: '/v1/attribution/text',
    body: { texts: ['star', 'banana'], full: true, normalize: 'none', templates: ['a photo of {}', '{}!'] },
    rows: (json) => (json.results as { vector: number[] }[]).map((result) => result.vector),
    shape: [2, C],
  },
];

t.test('every vector route: numpy reads the binary forms, equal bit for bit to the JSON', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'binary-vectors-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const manifest: Record<string, unknown>[] = [];
  for (const item of cases) {
    const post = (accept?: string) =>
      app.inject({
        method: 'POST',
        url: item.url,
        payload: item.body,
        headers: accept === undefined ? {} : { accept },
      });
    const json = await post();
    t.equal(json.statusCode, 200, `${item.name} JSON`);
    t.match(json.headers['content-type'], /^application\/json/, `${item.name}: JSON stays the default`);
    t.equal(json.headers.vary, 'Accept', `${item.name}: JSON answers vary on Accept`);
    t.notOk(json.headers['x-shape'], `${item.name}: no X-Shape on JSON`);
    // The JSON text is what the schema's own serialiser (fast-json-stringify) would have written.
    const document = app.swagger() as unknown as {
      paths: Record<
        string,
        { post: { responses: { 200: { content: Record<string, { schema: object }> } } } }
      >;
    };
    const documented = document.paths[item.url.split('?')[0]!]!.post.responses[200].content[JSON_TYPE]!;
    const schemaSerialiser = fastJsonStringify(documented.schema);
    t.equal(json.body, schemaSerialiser(json.json()), `${item.name}: the schema serialiser's text`);
    const jsonRows = item.rows(json.json());
    t.same(
      [jsonRows.length, jsonRows[0]!.length],
      item.shape.length === 1 ? [1, item.shape[0]] : item.shape,
      `${item.name}: the JSON has the expected size`,
    );
    await writeFile(path.join(dir, `${item.name}.json`), JSON.stringify(jsonRows));

    for (const [accept, suffix] of [
      [NPY, 'npy'],
      [RAW, 'raw'],
    ] as const) {
      const binary = await post(accept);
      t.equal(binary.statusCode, 200, `${item.name} ${accept}`);
      t.equal(binary.headers['content-type'], accept, `${item.name}: content-type ${accept}`);
      t.equal(binary.headers['x-shape'], item.shape.join(','), `${item.name}: X-Shape`);
      t.equal(binary.headers['x-dtype'], 'float32', `${item.name}: X-Dtype`);
      t.equal(binary.headers.vary, 'Accept', `${item.name}: binary answers vary on Accept`);
      const bytes = binary.rawPayload;
      const values = item.shape.reduce((a, b) => a * b, 1);
      if (suffix === 'raw') t.equal(bytes.length, 4 * values, `${item.name}: raw is the values alone`);
      await writeFile(path.join(dir, `${item.name}.${suffix}`), bytes);
      manifest.push({ name: item.name, suffix, shape: binary.headers['x-shape'] });
    }
  }
  await writeFile(path.join(dir, 'manifest.json'), JSON.stringify(manifest));

  // numpy reads each binary body on its own (np.load for .npy, frombuffer + X-Shape for the raw
  // form) and compares its float32 bits with the JSON numbers cast to float32.
  const script = String.raw`
import json, sys, os
import numpy as np
d = sys.argv[1]
out = []
for m in json.load(open(os.path.join(d, "manifest.json"))):
    path = os.path.join(d, m["name"] + "." + m["suffix"])
    shape = tuple(int(s) for s in m["shape"].split(","))
    if m["suffix"] == "npy":
        a = np.load(path, allow_pickle=False)
    else:
        a = np.frombuffer(open(path, "rb").read(), dtype="<f4").reshape(shape)
    ref = np.array(json.load(open(os.path.join(d, m["name"] + ".json"))), dtype=np.float64)
    ref32 = ref.astype(np.float32)
    out.append({
        "name": m["name"], "suffix": m["suffix"], "dtype": a.dtype.str, "shape": list(a.shape),
        "fortran": bool(np.isfortran(a)) if a.ndim > 1 else False,
        "exact32": bool(np.array_equal(ref32.astype(np.float64), ref)),
        "bitwise": bool(np.array_equal(a.reshape(ref32.shape).view("<u4"), ref32.view("<u4"))),
        "finite": bool(np.isfinite(a).all()), "nonzero": int(np.count_nonzero(a)),
    })
print(json.dumps(out))
`;
  const result = spawnSync(PYTHON, ['-c', script, dir], { encoding: 'utf8' });
  t.equal(result.status, 0, result.stderr);
  const reports = JSON.parse(result.stdout) as {
    name: string;
    suffix: string;
    dtype: string;
    shape: number[];
    fortran: boolean;
    exact32: boolean;
    bitwise: boolean;
    finite: boolean;
    nonzero: number;
  }[];
  t.equal(reports.length, cases.length * 2);
  for (const report of reports) {
    const item = cases.find((c) => c.name === report.name)!;
    const where = `${report.name} (${report.suffix})`;
    t.equal(report.dtype, '<f4', `${where}: numpy reads little-endian float32`);
    t.same(report.shape, item.shape, `${where}: numpy's shape`);
    t.notOk(report.fortran, `${where}: C order`);
    t.ok(report.exact32, `${where}: the JSON numbers are float32 values`);
    t.ok(report.bitwise, `${where}: equal bit for bit to the JSON answer`);
    t.ok(report.finite && report.nonzero > 0, `${where}: finite, not all zero`);
  }
});

t.test('bad Accept values and bad bodies', async (t) => {
  for (const url of ['/v1/embed/text', '/v1/attribution/text']) {
    for (const accept of ['text/html', 'application/xml', 'application/json;q=0', 'garbage']) {
      const res = await app.inject({ method: 'POST', url, payload: { texts: ['x'] }, headers: { accept } });
      t.equal(res.statusCode, 406, `${url} Accept: ${accept}`);
      t.match(res.json(), { statusCode: 406, error: 'Not Acceptable', message: /application\/x-npy/ });
    }
    // A bad body is a 400 in every form.
    const bad = await app.inject({ method: 'POST', url, payload: { texts: [] }, headers: { accept: NPY } });
    t.equal(bad.statusCode, 400, `${url}: bad body with Accept ${NPY}`);
    t.match(bad.json().message, /texts/);
  }
  const image = await app.inject({
    method: 'POST',
    url: '/v1/embed/image',
    payload: { image: png.toString('base64') },
    headers: { accept: 'image/png' },
  });
  t.equal(image.statusCode, 406, 'embed/image Accept: image/png');
});

t.test('the OpenAPI document lists the three forms and the headers', async (t) => {
  const document = app.swagger() as {
    paths: Record<
      string,
      { post: { responses: Record<string, { content: object; headers?: Record<string, unknown> }> } }
    >;
  };
  for (const route of ['/v1/embed/text', '/v1/embed/image', '/v1/attribution/text']) {
    const ok = document.paths[route]!.post.responses['200']!;
    t.same(Object.keys(ok.content).sort(), [JSON_TYPE, RAW, NPY].sort(), `${route}: content types`);
    t.match(ok.content, { [NPY]: { schema: { type: 'string', format: 'binary' } } });
    t.ok(ok.headers?.['x-shape'] && ok.headers['x-dtype'], `${route}: headers documented`);
    t.ok(document.paths[route]!.post.responses['406'], `${route}: 406 documented`);
  }
});

t.test('Vary: Accept is added to the Vary: Origin of CORS with a list of origins', async (t) => {
  const listed = await buildTestApp({ modelDir: TOYWORLD_DIR, corsOrigins: ['https://app.example'] });
  t.teardown(() => listed.close());
  for (const accept of [undefined, NPY]) {
    const res = await listed.inject({
      method: 'POST',
      url: '/v1/embed/text',
      payload: { texts: ['a red circle'] },
      headers: { origin: 'https://app.example', ...(accept ? { accept } : {}) },
    });
    t.equal(res.statusCode, 200);
    const vary = String(res.headers.vary)
      .split(',')
      .map((field) => field.trim().toLowerCase());
    t.same(vary.sort(), ['accept', 'origin'], `Accept: ${accept ?? '(none)'}: Vary ${res.headers.vary}`);
    t.equal(res.headers['access-control-expose-headers'], 'X-Shape, X-Dtype');
  }
});
