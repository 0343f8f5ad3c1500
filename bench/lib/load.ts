/**
 * Load that benchmarks drive through the service: a mix of its routes (prompts from a pool, so a
 * realistic share of cache hits), a preflight that keeps the routes answering 200, the mix as
 * autocannon requests, and a few numbers read from /metrics.
 */
import type autocannon from 'autocannon';
import sharp from 'sharp';

export interface MixEntry {
  name: string;
  method: 'GET' | 'POST';
  path: string | (() => string);
  body?: () => unknown;
}

/** A mix of the service's routes; prompts come from a pool (a realistic mix of cache hits and misses). */
export async function routeMix(options: { promptPool?: number } = {}): Promise<MixEntry[]> {
  const pool = options.promptPool ?? 2000;
  const colours = ['red', 'green', 'blue', 'yellow', 'purple', 'orange', 'pink', 'brown'];
  const shapes = ['star', 'circle', 'square', 'triangle', 'heart', 'diamond', 'apple', 'tree'];
  const prompts = Array.from(
    { length: pool },
    (_, i) => `a ${colours[i % 8]} ${shapes[Math.floor(i / 8) % 8]} number ${Math.floor(i / 64)}`,
  );
  const images = await Promise.all(
    colours.map((_, i) =>
      sharp({
        create: {
          width: 48 + i * 8,
          height: 64,
          channels: 3,
          background: { r: 30 * i, g: 255 - 30 * i, b: 90 },
        },
      })
        .png()
        .toBuffer()
        .then((png) => png.toString('base64')),
    ),
  );
  let n = 0;
  const prompt = () => prompts[n++ % prompts.length];
  const image = () => images[n++ % images.length];
  return [
    { name: 'health', method: 'GET', path: '/health' },
    { name: 'model', method: 'GET', path: '/v1/model' },
    { name: 'tokenize', method: 'POST', path: '/v1/tokenize', body: () => ({ texts: [prompt(), prompt()] }) },
    { name: 'embed text', method: 'POST', path: '/v1/embed/text', body: () => ({ texts: [prompt()] }) },
    {
      name: 'embed text ×8',
      method: 'POST',
      path: '/v1/embed/text',
      body: () => ({ texts: Array.from({ length: 8 }, prompt) }),
    },
    {
      name: 'attribution text',
      method: 'POST',
      path: '/v1/attribution/text',
      body: () => ({ texts: [prompt()], topK: 5 }),
    },
    { name: 'embed image', method: 'POST', path: '/v1/embed/image', body: () => ({ image: image() }) },
    {
      name: 'classify',
      method: 'POST',
      path: '/v1/classify',
      body: () => ({ image: image(), labels: colours.slice(0, 4), template: 'a {} shape' }),
    },
    { name: 'raster', method: 'GET', path: () => `/v1/raster?text=${encodeURIComponent(shapes[n++ % 8])}` },
    { name: 'neuron', method: 'GET', path: () => `/v1/neurons/${n++ % 64}` },
    { name: 'emotions', method: 'GET', path: '/v1/emotions' },
  ];
}

/** Keeps the entries that answer 200 now (the preflight), with the reason for dropping the others. */
export async function preflight(
  url: string,
  mix: MixEntry[],
): Promise<{ kept: MixEntry[]; dropped: string[] }> {
  const kept: MixEntry[] = [];
  const dropped: string[] = [];
  for (const entry of mix) {
    const target = typeof entry.path === 'string' ? entry.path : entry.path();
    const res = await fetch(url + target, {
      method: entry.method,
      headers: entry.body ? { 'content-type': 'application/json' } : {},
      body: entry.body ? JSON.stringify(entry.body()) : undefined,
    });
    const text = await res.text();
    if (res.status === 200) kept.push(entry);
    else dropped.push(`${entry.name} (${entry.method} ${target}: ${res.status} ${text.slice(0, 120)})`);
  }
  return { kept, dropped };
}

export function autocannonRequests(mix: MixEntry[]): autocannon.Request[] {
  return mix.map((entry) => ({
    method: entry.method,
    path: typeof entry.path === 'string' ? entry.path : '/',
    headers: entry.body ? { 'content-type': 'application/json' } : undefined,
    setupRequest: (request: autocannon.Request) => ({
      ...request,
      path: typeof entry.path === 'string' ? entry.path : entry.path(),
      ...(entry.body ? { body: JSON.stringify(entry.body()) } : {}),
    }),
  }));
}

/** Reads /metrics and picks a few numbers out of it. */
export async function metricsSummary(url: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const total = (pattern: RegExp) =>
    text
      .split('\n')
      .filter((line) => pattern.test(line))
      .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
  const hits = total(/^cache_lookups_total\{result="hit"/);
  const misses = total(/^cache_lookups_total\{result="miss"/);
  const runs = total(/^ort_batch_rows_count/);
  const rows = total(/^ort_batch_rows_sum/);
  const ortSeconds = total(/^ort_run_duration_seconds_sum/);
  return {
    cacheHits: hits,
    cacheMisses: misses,
    cacheHitRatio: hits / Math.max(1, hits + misses),
    ortRuns: runs,
    meanBatchRows: rows / Math.max(1, runs),
    meanOrtRunMs: (1000 * ortSeconds) / Math.max(1, runs),
  };
}

export function fmtMiB(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}
