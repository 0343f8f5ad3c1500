/**
 * Multipart requests that busboy cannot read (issue 21, failure 1): on every route that takes an
 * upload, a multipart content type without a boundary, or a body that breaks off, is a 400 naming
 * what to send, never a 500; so is a field given twice. The routes are found in the sources (every
 * `preValidation: multipartToBody`), so a new upload route is covered without editing this file.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { buildTestApp } from './helpers/app.js';
import { repoRoot } from './helpers/tiny-model.js';

function multipartRoutes(): { method: string; url: string }[] {
  const dir = path.join(repoRoot, 'src', 'routes');
  const routes: { method: string; url: string }[] = [];
  for (const file of readdirSync(dir).filter((name) => name.endsWith('.ts'))) {
    const source = readFileSync(path.join(dir, file), 'utf8');
    const starts = [...source.matchAll(/app\.(get|post|put|patch|delete)\(\s*'([^']+)'/g)];
    starts.forEach((match, i) => {
      const segment = source.slice(match.index, starts[i + 1]?.index ?? source.length);
      if (/preValidation:\s*multipartToBody/.test(segment)) {
        routes.push({ method: match[1].toUpperCase(), url: match[2] });
      }
    });
  }
  return routes;
}

const routes = multipartRoutes();
const app = await buildTestApp();
t.teardown(() => app.close());

t.ok(routes.length >= 3, `multipart routes found: ${routes.map((r) => r.url).join(', ')}`);

for (const { method, url } of routes) {
  t.test(`${method} ${url}`, async (t) => {
    for (const contentType of [
      'multipart/form-data',
      'multipart/form-data; boundary=',
      'Multipart/Form-Data;',
    ]) {
      const answer = await app.inject({
        method: method as 'POST',
        url,
        headers: { 'content-type': contentType },
        payload: 'x',
      });
      t.equal(answer.statusCode, 400, `"${contentType}": 400`);
      t.match(
        answer.json(),
        { statusCode: 400, error: 'Bad Request', message: /no boundary.*multipart\/form-data.*"image"/ },
        'the message names what to send',
      );
    }
    // A boundary, but a body that breaks off inside a part.
    const cut = await app.inject({
      method: method as 'POST',
      url,
      headers: { 'content-type': 'multipart/form-data; boundary=XyZ' },
      payload: '--XyZ\r\ncontent-disposition: form-data; name="image"; filename="a.png"\r\n\r\n\x89PNG',
    });
    t.ok(cut.statusCode >= 400 && cut.statusCode < 500, `a truncated body is a 4xx (${cut.statusCode})`);
    // A field given twice (its last value was once kept without a word).
    const field = (value: string) =>
      `--XyZ\r\ncontent-disposition: form-data; name="labels"\r\n\r\n${value}\r\n`;
    const twice = await app.inject({
      method: method as 'POST',
      url,
      headers: { 'content-type': 'multipart/form-data; boundary=XyZ' },
      payload: `${field('["red"]')}${field('["blue"]')}--XyZ--\r\n`,
    });
    t.equal(twice.statusCode, 400, 'a field given twice: 400');
    t.match(twice.json().message, /the field "labels" is given twice; send each field once/);
  });
}
