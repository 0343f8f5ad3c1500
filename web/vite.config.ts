/**
 * Builds the explorer page (web/index.html, web/src/) into web/dist/, which the service serves at /
 * (src/plugins/explorer.ts). File names carry no content hash, so a rebuild rewrites the same files
 * and the committed web/dist/ changes only where the page does; the service revalidates them with
 * ETags. `npx vite --config web/vite.config.ts` serves the page with hot reload and forwards the API
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
