/**
 * openapi/openapi.json is generated from the routes' TypeBox schemas (npm run openapi) and checked in:
 * this test fails when it is stale, and validates it as an OpenAPI document.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import SwaggerParser from '@apidevtools/swagger-parser';
import { buildTestApp } from './helpers/app.js';

const app = await buildTestApp();
t.teardown(() => app.close());

t.test('the checked-in document equals what the routes generate', async (t) => {
  const generated = JSON.parse(JSON.stringify(app.swagger())) as object;
  const checkedIn = JSON.parse(readFileSync('openapi/openapi.json', 'utf8')) as object;
  t.same(checkedIn, generated, 'openapi/openapi.json is stale: run `npm run openapi` and commit it');
});

t.test('the document is valid OpenAPI and lists every route', async (t) => {
  const document = JSON.parse(readFileSync('openapi/openapi.json', 'utf8')) as {
    paths: Record<string, object>;
  };
  await t.resolves(SwaggerParser.validate(structuredClone(document) as never));
  for (const path of ['/health', '/v1/model', '/v1/tokenize', '/v1/embed/text', '/v1/embed/image']) {
    t.ok(document.paths[path], `${path} documented`);
  }
  for (const path of ['/v1/classify', '/v1/raster', '/v1/attribution/text', '/v1/neurons/{id}']) {
    t.ok(document.paths[path], `${path} documented`);
  }
});

t.test('the service serves the document and Swagger UI', async (t) => {
  const json = await app.inject('/openapi.json');
  t.equal(json.statusCode, 200);
  t.same(json.json(), JSON.parse(readFileSync('openapi/openapi.json', 'utf8')));
  const ui = await app.inject('/docs');
  t.ok([200, 302].includes(ui.statusCode));
});
