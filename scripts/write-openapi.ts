/**
 * Writes openapi/openapi.json from the routes' schemas (`npm run openapi`). A test fails when the
 * checked-in file differs from what the routes generate.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { buildApp } from '../src/app.js';
import { loadConfig, REPO_ROOT } from '../src/config.js';

export const OPENAPI_FILE = path.join(REPO_ROOT, 'openapi', 'openapi.json');

const app = await buildApp({ config: { ...loadConfig(), redisUrl: undefined }, logger: false });
await app.ready();
await writeFile(OPENAPI_FILE, JSON.stringify(app.swagger(), null, 2) + '\n');
await app.close();
console.log(`wrote ${path.relative(process.cwd(), OPENAPI_FILE)}`);
