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

t.test(
  'every operation has a unique operationId, every tag is declared, and a server is named',
  async (t) => {
    const document = JSON.parse(readFileSync('openapi/openapi.json', 'utf8')) as {
      paths: Record<string, Record<string, { operationId?: string; tags?: string[] }>>;
      tags?: { name: string }[];
      servers?: { url: string }[];
    };
    const declared = new Set((document.tags ?? []).map((tag) => tag.name));
    const ids = new Set<string>();
    for (const [path, operations] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        const where = `${method.toUpperCase()} ${path}`;
        t.match(operation.operationId, /^[a-z][A-Za-z0-9]+$/, `${where} has an operationId`);
        t.notOk(ids.has(operation.operationId!), `${where}: ${operation.operationId} is unique`);
        ids.add(operation.operationId!);
        for (const tag of operation.tags ?? []) t.ok(declared.has(tag), `${where}: tag ${tag} is declared`);
      }
    }
    t.ok((document.servers ?? []).length > 0, 'the document names a server');
  },
);
