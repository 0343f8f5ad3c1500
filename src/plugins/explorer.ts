/**
 * The explorer page (web/, built by `npm run web:build` into web/dist/) at / and its files at
 * /assets/*. Files are read per request, so a rebuild shows without a restart; they are small.
 * Responses carry `cache-control: no-cache` and a content ETag (the built names have no hash), so
 * browsers revalidate and get 304 when nothing changed. When web/dist/ is missing, / answers 404
 * with how to build it. The routes are hidden from the OpenAPI document; the security plugin
 * treats / and /assets/ as open paths, and its CSP (script-src 'self', no upgrade-insecure-requests,
 * so the page also loads over plain HTTP off loopback) suits the built page, which has no inline
 * script.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { REPO_ROOT } from '../config.js';
import { HttpError } from '../errors.js';

export const EXPLORER_DIR = path.join(REPO_ROOT, 'web', 'dist');

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
};

/** A file name under assets/: plain segments only (no `..`, no hidden files). */
const ASSET_PATH = /^(?:[A-Za-z0-9_-][A-Za-z0-9._-]*\/)*[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

export interface ExplorerOptions {
  /** The built page; default web/dist/ of the repository. */
  dir?: string;
}

const explorer: FastifyPluginAsync<ExplorerOptions> = async (app, options) => {
  const dir = path.resolve(options.dir ?? EXPLORER_DIR);
  const assets = path.join(dir, 'assets');

  async function send(request: FastifyRequest, reply: FastifyReply, file: string, missing: string) {
    const type = CONTENT_TYPES[path.extname(file).toLowerCase()];
    let body: Buffer;
    try {
      if (type === undefined) throw Object.assign(new Error('no content type'), { code: 'ENOENT' });
      body = await readFile(file);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'EISDIR' || code === 'ENOTDIR') throw new HttpError(404, missing);
      throw error;
    }
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
    reply.header('cache-control', 'no-cache').header('etag', etag);
    if (request.headers['if-none-match'] === etag) return reply.code(304).send();
    return reply.type(type).send(body);
  }

  app.get('/', { schema: { hide: true } }, (request, reply) =>
    send(
      request,
      reply,
      path.join(dir, 'index.html'),
      'the explorer page is missing (web/dist/index.html): run `npm run web:build`, or copy web/dist/ with the service',
    ),
  );

  app.get<{ Params: { '*': string } }>('/assets/*', { schema: { hide: true } }, (request, reply) => {
    const name = request.params['*'];
    const missing = `Route GET /assets/${name} not found`;
    if (!ASSET_PATH.test(name)) throw new HttpError(404, missing);
    const file = path.join(assets, name);
    if (!file.startsWith(assets + path.sep)) throw new HttpError(404, missing);
    return send(request, reply, file, missing);
  });
};

export default fp(explorer, { name: 'explorer', dependencies: [] });
