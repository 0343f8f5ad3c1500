// @ts-check
import js from '@eslint/js';
import { createNodeResolver, importX } from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: ['dist/', 'node_modules/', 'models/', 'bench/results/', '.tap/', 'web/dist/', 'tools/', 'tmp/'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // Rules that need the types: each file is checked with the tsconfig.json nearest to it (the
    // root one for src/, test/, bench/, scripts/; web/tsconfig.json for the explorer).
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // A promise nobody awaits loses its rejection (an unhandled rejection ends the process) and
      // its ordering; fire-and-forget is written `void promise` with a comment saying why.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          // tap queues a subtest and reports its failure itself: `t.test(...)` needs no await.
          allowForKnownSafeCalls: [
            { from: 'package', package: '@tapjs/test', name: ['test', 'skip', 'todo', 'only'] },
            // A FastifyReply is thenable (`await reply` waits for the send), but these methods set
            // headers or send and hand the same reply back for chaining: nothing is left floating.
            {
              from: 'package',
              package: 'fastify',
              name: ['code', 'status', 'header', 'headers', 'type', 'send', 'removeHeader'],
            },
          ],
        },
      ],
      // An async function where a void callback is expected (an event listener, forEach, a
      // Fastify hook written for callbacks) has its rejection dropped by the caller.
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
    },
  },
  {
    // Import cycles: a module graph with a circle has an order of evaluation that depends on which
    // file is imported first (a `const` read before it is initialised). Resolved like Node does,
    // with `.js` specifiers naming the `.ts` sources.
    files: ['**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      'import-x/extensions': ['.ts', '.js'],
      'import-x/resolver-next': [
        createNodeResolver({
          extensions: ['.ts', '.js', '.json'],
          extensionAlias: { '.js': ['.ts', '.js'] },
        }),
      ],
    },
    rules: {
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
    },
  },
);
