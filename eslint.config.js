import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/*
 * The layers of src/, checked on every import (relative paths: `../<folder>/…` from a feature, `./<folder>/…`
 * from a file at the top of src/). A folder lists the folders it must not import, each with the reason.
 * Bottom up (a folder may import those to its left): shared → db, pages (i18n) → audit, auth → http, settings, operators →
 * orders → notifications, callbacks → reconcile → refunds → metrics, openapi, health, system, cli → admin, sandbox → app.ts, main.ts.
 */
const FOLDERS = [
  'admin',
  'audit',
  'auth',
  'callbacks',
  'cli',
  'db',
  'health',
  'http',
  'metrics',
  'notifications',
  'openapi',
  'operators',
  'orders',
  'pages',
  'reconcile',
  'refunds',
  'sandbox',
  'settings',
  'shared',
  'system',
];
const all = (...except) => FOLDERS.filter((f) => !except.includes(f));
const importOf = (folders) => `^(\\.\\./)+(${folders.join('|')})/`;

// Features never import the console or the sandbox: those are optional front ends wired in by app.ts alone.
const FRONT_ENDS = {
  regex: importOf(['admin', 'sandbox']),
  message: 'Only src/app.ts, src/gateway-calls.ts and src/main.ts wire in the console and the sandbox.',
};
// Features never import the composition roots: they receive what they need as arguments.
const ROOTS = { regex: '^(\\.\\./)+(app|main|server|bootstrap|gateway-calls)\\.ts$', message: 'The composition roots import features, never the reverse.' };

/** One block per folder: the rule's options do not merge across blocks, so each folder gets its whole list here. */
function layer(folder, forbidden, message, { frontEnds = true } = {}) {
  const patterns = [{ regex: importOf(forbidden), message }, ROOTS];
  if (frontEnds) patterns.push(FRONT_ENDS);
  return { files: [`src/${folder}/**/*.ts`], rules: { 'no-restricted-imports': ['error', { patterns }] } };
}

const layers = [
  // shared is the bottom: pure helpers every feature may use, so it uses none of them (nor config.ts).
  {
    files: ['src/shared/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [{ regex: '^\\.\\./', message: 'src/shared depends on nothing else in src/.' }] }] },
  },
  // db is the storage plumbing under every repository: it knows the schema and migrations, no feature.
  layer('db', all('shared'), 'src/db may import only src/shared (and migrations/).'),
  // pages holds the language of the server-rendered pages, which the error page, the console and the result page all speak.
  layer('pages', all('shared'), 'src/pages (i18n) may import only src/shared.'),
  // The audit log is written inside the transactions of the console and of settings changes: it knows only storage.
  layer('audit', all('shared', 'db'), 'src/audit may import only src/shared and src/db.'),
  // API keys are checked by the HTTP guard and managed by the CLI: storage and helpers only.
  layer('auth', all('shared', 'db'), 'src/auth may import only src/shared and src/db.'),
  // http is the plumbing of every route: the API guard asks auth, the error page speaks pages' language; no feature.
  layer('http', all('shared', 'db', 'auth', 'pages'), 'src/http may import only shared, db, auth and pages (i18n).'),
  // Orders are the core: callbacks and notifications act on orders, so orders know neither (nor any front end).
  layer('orders', all('shared', 'db', 'http'), 'src/orders may import only shared, db and http: the order rules depend on no other feature.'),
  // Delivery reads the outbox that orders write; it is told about settings by injection, never by import.
  layer('notifications', all('shared', 'db', 'http', 'orders'), 'src/notifications may import only shared, db, http and orders (settings come injected).'),
  // Callbacks decide with the order rules and answer with the result page; settings and delivery come injected.
  layer(
    'callbacks',
    all('shared', 'db', 'http', 'orders', 'pages'),
    'src/callbacks may import only shared, db, http, orders and pages (settings come injected).',
  ),
  // The reconciler asks gateways and applies their answers through the callbacks' own decision and transaction.
  layer(
    'reconcile',
    all('shared', 'db', 'http', 'orders', 'callbacks'),
    'src/reconcile may import only shared, db, http, orders and callbacks (settings and delivery come injected).',
  ),
  // Refunds are sent with the gateways' API clients and settled through the order ledger, like a callback or a query.
  layer(
    'refunds',
    all('shared', 'db', 'http', 'orders', 'callbacks', 'reconcile'),
    'src/refunds may import only shared, db, http, orders, callbacks and reconcile (settings and delivery come injected).',
  ),
  // Runtime settings are read by callbacks and delivery through injection, so they must not depend on them.
  layer('settings', all('shared', 'db', 'audit'), 'src/settings may import only shared, db and audit.'),
  // Console accounts are signed in by the console, bootstrapped by system and managed by the CLI: storage and audit only.
  layer('operators', all('shared', 'db', 'audit'), 'src/operators may import only shared, db and audit.'),
  // Metrics, the API description and health name what features expose, above them and below the front ends.
  layer(
    'metrics',
    all('shared', 'db', 'http', 'orders', 'notifications', 'callbacks', 'reconcile', 'refunds'),
    'src/metrics may not import settings, system or a front end.',
  ),
  layer(
    'openapi',
    all('shared', 'db', 'http', 'pages', 'orders', 'notifications', 'callbacks', 'reconcile', 'refunds'),
    'src/openapi may not import settings, system or a front end.',
  ),
  layer('health', all('shared', 'db', 'http'), 'src/health may import only shared, db and http.'),
  // Operations (doctor, maintenance, secrets) sit above the features they check and clean; no feature imports system.
  layer('system', ['admin', 'sandbox', 'cli', 'metrics', 'openapi', 'health'], 'src/system may not import a front end, the CLI or the HTTP-only features.'),
  // The command-line tools run outside the server: never the console, the sandbox or the routes.
  layer('cli', ['admin', 'sandbox', 'http', 'health', 'metrics', 'openapi'], 'src/cli may not import the web front ends or routes.'),
  // The console and the sandbox are two independent front ends over the same features.
  layer('admin', ['sandbox', 'cli'], 'src/admin may not import the sandbox or the CLI.', { frontEnds: false }),
  layer('sandbox', ['admin', 'cli'], 'src/sandbox may not import the console or the CLI.', { frontEnds: false }),
  // config.ts is read by every layer: it holds values and calls only pure validators (secret strength, gateway keys).
  {
    files: ['src/config.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '^\\./(?!shared/|system/secret-strength\\.ts$|callbacks/gateways/gateway-keys\\.ts$)',
              message: 'config.ts may import only src/shared and the pure validators it reports with.',
            },
          ],
        },
      ],
    },
  },
  // server.ts and bootstrap.ts start what main.ts wires: no front end of their own.
  {
    files: ['src/server.ts', 'src/bootstrap.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [{ regex: '^\\./(admin|sandbox)/', message: FRONT_ENDS.message }] }] },
  },
];

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'data/', 'coverage/', 'public/vendor/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': ['error', { allow: ['warn', 'error'] }],
    },
  },
  {
    // Type-aware: a promise nobody awaits loses its rejection (an unhandled rejection ends the process).
    files: ['src/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts', 'migrations/**/*.ts', 'vitest.config.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: { '@typescript-eslint/no-floating-promises': 'error' },
  },
  ...layers,
  {
    files: ['src/cli/**', 'src/main.ts', 'bench/**', 'test/**'],
    rules: { 'no-console': 'off' },
  },
  {
    // The merchant examples are plain Node scripts (built-ins only) that print their results.
    files: ['examples/**/*.mjs'],
    languageOptions: {
      sourceType: 'module',
      globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', fetch: 'readonly', AbortSignal: 'readonly', URL: 'readonly' },
    },
    rules: { 'no-console': 'off' },
  },
);
