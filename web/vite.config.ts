/**
 * Builds the explorer page (web/index.html, web/src/) into web/dist/, which the service serves at /
 * (src/plugins/explorer.ts). web/dist/ is committed (about 35 kB): `npm ci --omit=dev && npm start`
 * and images without Vite serve the page as is, and test/explorer.test.ts fails when it differs
 * from a fresh build of web/ (`npm run web:build`, then commit web/dist/; it is under the root
 * .gitignore's dist/, so new files need `git add -f`). File names carry no content hash, so a
 * rebuild rewrites the same files; the service revalidates them with ETags. `npx vite --config web/vite.config.ts` serves the page with hot reload and forwards the API
 * to EXPLORER_API (default http://127.0.0.1:8080).
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const api = process.env.EXPLORER_API ?? 'http://127.0.0.1:8080';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  publicDir: false,
  logLevel: 'warn',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
    rollupOptions: {
      output: {
        entryFileNames: 'assets/explorer.js',
        chunkFileNames: 'assets/[name].js',
        assetFileNames: 'assets/[name][extname]',
      },
    },
  },
  server: { proxy: { '/v1': api, '/health': api, '/docs': api, '/openapi.json': api } },
});
