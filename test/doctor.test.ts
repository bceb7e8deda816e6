import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseVersion, openDatabase } from '../src/db/database.ts';
import { migrateToLatest, pendingMigrations } from '../src/db/migrator.ts';
import { migrations } from '../migrations/index.ts';
import { ALIPAY_STANDIN_KEYS } from './helpers/alipay-standin.ts';
import { createTestContext, TEST_API_KEY, TEST_ENV, TEST_GATEWAY_SECRET, type TestContext } from './helpers/context.ts';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';
import { ENGINES, MYSQL_URL } from './helpers/engines.ts';
import { STRIPE_STANDIN_KEYS } from './helpers/stripe-standin.ts';
import { WECHATPAY_STANDIN_KEYS } from './helpers/wechatpay-standin.ts';

/** `npm run doctor` as operators run it: a child process with an explicit environment, judged by its lines and exit status. */

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const TSX = join(ROOT, 'node_modules', '.bin', 'tsx');

interface DoctorRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The ✓/⚠/✗ lines. */
  checks: string[];
  ms: number;
}

function doctor(env: Record<string, string | undefined>, args: string[] = []): Promise<DoctorRun> {
  // Asynchronous on purpose: the self-test talks to a server in this very process.
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(TSX, ['src/cli/doctor.ts', ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, TZ: 'UTC', ...env } as NodeJS.ProcessEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 25_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const checks = stdout.split('\n').filter((line) => /^[✓⚠✗] /.test(line));
      resolve({ code, stdout, stderr, checks, ms: Date.now() - started });
    });
  });
}

const line = (run: DoctorRun, name: string) => run.checks.find((l) => l.slice(2).startsWith(`${name}:`));
const SECRET_NAMES = ['GATEWAY_SECRET', 'NOTIFY_SECRET', 'ADMIN_PASSWORD', 'SESSION_SECRET'];
const LOCAL_CHECKS = [
  'configuration',
  'database reachable',
  'database version',
  'migrations',
  ...SECRET_NAMES.map((n) => `secret ${n}`),
  'API keys',
  'clock and timezone',
  'data directory',
  'reconciliation',
  'refunds',
];

function expectAllPassed(run: DoctorRun, count: number) {
  expect(
    run.checks.filter((l) => l.startsWith('✗')),
    run.stdout + run.stderr,
  ).toEqual([]);
  expect(run.checks).toHaveLength(count);
  expect(run.stdout).toContain(`doctor: all ${count} checks passed`);
  expect(run.code).toBe(0);
}

function expectNoSecrets(run: DoctorRun, values: string[]) {
  for (const value of values) expect(run.stdout + run.stderr).not.toContain(value);
}

beforeAll(() => {
  // loadDotEnv() reads ./.env; a developer's file there would leak settings into these runs.
  if (existsSync(join(ROOT, '.env'))) throw new Error(`${join(ROOT, '.env')} exists: move it away to run the doctor tests`);
});

describe('npm run doctor on SQLite', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext('sqlite');
  });
  afterAll(() => ctx.close());

  it('passes every check on a migrated database with every secret configured', async () => {
    const run = await doctor({ ...TEST_ENV, DATABASE_URL: ctx.database.url });
    expectAllPassed(run, LOCAL_CHECKS.length);
    for (const name of LOCAL_CHECKS) expect(line(run, name), name).toMatch(/^✓ /);
    expect(line(run, 'database version')).toMatch(/SQLite 3\.\d+/);
    expect(line(run, 'migrations')).toContain('current');
    expect(line(run, 'data directory')).toContain('writable');
    expect(line(run, 'reconciliation')).toBe('✓ reconciliation: sandbox can be asked; generic cannot (set GENERIC_QUERY_URL)');
    expect(run.stdout).not.toMatch(/\d+ passed, \d+ failed/);
    expectNoSecrets(run, [TEST_API_KEY, TEST_ENV.GATEWAY_SECRET!, TEST_ENV.NOTIFY_SECRET!, TEST_ENV.ADMIN_PASSWORD!, TEST_ENV.SESSION_SECRET!]);
  });

  it('flags a weak GATEWAY_SECRET without printing it', async () => {
    const run = await doctor({ ...TEST_ENV, DATABASE_URL: ctx.database.url, GATEWAY_SECRET: 'weak1234' });
    expect(run.code).toBe(1);
    expect(line(run, 'secret GATEWAY_SECRET')).toMatch(/^✗ .*too weak: 8 characters, at least 16/);
    expect(line(run, 'secret NOTIFY_SECRET')).toMatch(/^✓ /);
    expect(run.stdout).toContain('doctor: 1 of 13 checks failed');
    expectNoSecrets(run, ['weak1234']);
  });

  it('reports an invalid setting as a ✗ line, not a stack trace, and still runs the other checks', async () => {
    const run = await doctor({ ...TEST_ENV, DATABASE_URL: ctx.database.url, PORT: 'not-a-port' });
    expect(run.code).toBe(1);
    expect(line(run, 'configuration')).toMatch(/^✗ configuration: 1 problem$/);
    expect(run.stdout).toMatch(/^ {4}- PORT: /m);
    expect(run.stdout + run.stderr).not.toMatch(/^\s+at /m);
    expect(line(run, 'database reachable')).toMatch(/^✓ /);
  });
});

describe('npm run doctor in development', () => {
  const DEV_ENV = { NODE_ENV: 'development', LOG_LEVEL: 'silent' };

  it('judges the secrets a previous start generated and stored in system_config', async () => {
    const unset = Object.fromEntries([...SECRET_NAMES, 'API_KEYS'].map((n) => [n, undefined]));
    const ctx = await createTestContext('sqlite', { env: { ...DEV_ENV, ...unset } });
    try {
      const run = await doctor({ ...DEV_ENV, DATABASE_URL: ctx.database.url });
      expectAllPassed(run, LOCAL_CHECKS.length);
      for (const name of SECRET_NAMES) expect(line(run, `secret ${name}`)).toMatch(/^✓ .*: stored in system_config, \d+ (characters|bytes)$/);
      expect(line(run, 'API keys')).toBe('✓ API keys: 1 active in the database');
      expectNoSecrets(
        run,
        SECRET_NAMES.map((n) => ctx.config.secrets[n as keyof typeof ctx.config.secrets]),
      );
    } finally {
      await ctx.close();
    }
  });

  it('accepts missing secrets and API keys as "will be generated" without generating anything', async () => {
    const database = await createTestDatabase('sqlite');
    const db = openDatabase(database.url);
    try {
      await migrateToLatest(db);
      const run = await doctor({ ...DEV_ENV, DATABASE_URL: database.url });
      expectAllPassed(run, LOCAL_CHECKS.length);
      for (const name of SECRET_NAMES) expect(line(run, `secret ${name}`)).toBe(`✓ secret ${name}: not set: will be generated at first start`);
      expect(line(run, 'API keys')).toMatch(/^✓ API keys: none yet: one will be generated/);
      expect(await db.kysely.selectFrom('system_config').selectAll().execute()).toEqual([]);
      expect(await db.kysely.selectFrom('api_keys').selectAll().execute()).toEqual([]);
    } finally {
      await db.close();
      await database.drop();
    }
  });
});

describe('npm run doctor on a database that is not ready', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'pcs-doctor-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reports pending migrations of an empty database and does not apply them', async () => {
    const database: TestDatabase = await createTestDatabase('sqlite');
    const empty = openDatabase(database.url);
    await sql`select 1`.execute(empty.kysely); // creates the empty file
    try {
      const run = await doctor({ ...TEST_ENV, DATABASE_URL: database.url });
      expect(run.code).toBe(1);
      expect(line(run, 'database reachable')).toMatch(/^✓ /);
      const names = Object.keys(migrations);
      expect(line(run, 'migrations')).toBe(`✗ migrations: ${names.length} of ${names.length} pending (${names.join(', ')}): run npm run migrate`);
      expect(run.checks.filter((l) => l.startsWith('✗'))).toHaveLength(1);
      expect(await pendingMigrations(empty)).toEqual(names);
      const tables = await sql<{ name: string }>`select name from sqlite_master where type = 'table'`.execute(empty.kysely);
      expect(tables.rows).toEqual([]);
    } finally {
      await empty.close();
      await database.drop();
    }
  });

  it('reports a missing SQLite file without creating it or its directory', async () => {
    const file = join(dir, 'not-yet', 'payments.db');
    const run = await doctor({ ...TEST_ENV, DATABASE_URL: `sqlite:${file}` });
    expect(run.code).toBe(1);
    expect(line(run, 'database reachable')).toMatch(/^✗ .*does not exist yet/);
    expect(line(run, 'database version')).toMatch(/^✓ database version: SQLite/);
    expect(line(run, 'migrations')).toMatch(/^✗ .*run npm run migrate/);
    expect(line(run, 'data directory')).toMatch(/^✓ .*can be created/);
    expect(existsSync(dirname(file))).toBe(false);
  });

  it('fails fast on an unreachable MySQL server', async () => {
    const run = await doctor({ ...TEST_ENV, DATABASE_URL: 'mysql://root@127.0.0.1:1/x' });
    expect(run.code).toBe(1);
    expect(line(run, 'database reachable')).toMatch(/^✗ database reachable: MySQL 127\.0\.0\.1:1\/x: .*ECONNREFUSED/);
    expect(line(run, 'data directory')).toBe('✓ data directory: not used (MySQL)');
    expect(run.ms).toBeLessThan(10_000);
  });
});

describe('npm run doctor in production', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext('sqlite');
  });
  afterAll(() => ctx.close());

  it('fails with a ✗ line naming every missing setting', async () => {
    const run = await doctor({ NODE_ENV: 'production', DATABASE_URL: ctx.database.url });
    expect(run.code).toBe(1);
    expect(line(run, 'configuration')).toMatch(/^✗ configuration: 5 problems/);
    expect(run.stdout).toContain('- METRICS_TOKEN: required in production');
    for (const name of SECRET_NAMES) {
      expect(run.stdout).toContain(`- ${name}: required in production`);
      expect(line(run, `secret ${name}`)).toMatch(/^✗ .*not set: required in production/);
    }
    expect(line(run, 'API keys')).toMatch(/^✗ API keys: none: set API_KEYS/);
    expect(line(run, 'migrations')).toMatch(/^✓ /);
    // Production's sandbox is off by default, also while the configuration is invalid.
    expect(line(run, 'reconciliation')).toBe('✓ reconciliation: no gateway can be asked; generic cannot (set GENERIC_QUERY_URL)');
    expect(run.stdout).toContain('doctor: 6 of 13 checks failed');
    expect(run.stdout + run.stderr).not.toMatch(/^\s+at /m);
  });

  it('never prints configured secret values, API keys or database passwords', async () => {
    const values = {
      GATEWAY_SECRET: 'gw-short-secret',
      NOTIFY_SECRET: `whsec_${Buffer.alloc(16, 3).toString('base64')}`,
      ADMIN_PASSWORD: 'admin-pw-10',
      API_KEYS: 'short-key-12,another-api-key-0123456789',
      METRICS_TOKEN: 'metrics-token-0123456789',
    };
    const run = await doctor({ NODE_ENV: 'production', DATABASE_URL: 'mysql://app:db-pass-word@127.0.0.1:1/pay', ...values });
    expect(run.code).toBe(1);
    expect(line(run, 'secret GATEWAY_SECRET')).toMatch(/^✗ .*too weak: 15 characters/);
    expect(line(run, 'secret ADMIN_PASSWORD')).toMatch(/^✗ .*too weak: 11 characters/);
    expect(line(run, 'secret SESSION_SECRET')).toMatch(/^✗ .*not set/);
    expect(line(run, 'API keys')).toMatch(/^✗ .*shorter than 24 characters/);
    expect(line(run, 'database reachable')).toMatch(/^✗ /);
    expectNoSecrets(run, [
      'gw-short-secret',
      values.NOTIFY_SECRET,
      values.NOTIFY_SECRET.slice(6),
      'admin-pw-10',
      'short-key-12',
      'another-api-key',
      'metrics-token',
      'db-pass-word',
    ]);
  });
});

describe.skipIf(!MYSQL_URL)('npm run doctor on MariaDB/MySQL', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext('mysql');
  });
  afterAll(() => ctx?.close());

  it('passes every check on a migrated database and names the server', async () => {
    const run = await doctor({ ...TEST_ENV, DATABASE_URL: ctx.database.url });
    expectAllPassed(run, LOCAL_CHECKS.length);
    const product = /mariadb/i.test(await databaseVersion(ctx.db)) ? 'MariaDB' : 'MySQL';
    expect(line(run, 'database version')).toMatch(new RegExp(`^✓ database version: ${product} \\d+\\.\\d+`));
    expect(line(run, 'clock and timezone')).toMatch(/^✓ clock and timezone: database clock (ahead of|behind) this host by \d+\.\d\d s/);
    expect(line(run, 'data directory')).toBe('✓ data directory: not used (MySQL)');
  });
});

describe('npm run doctor: reconciliation', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext('sqlite');
  });
  afterAll(() => ctx?.close());

  const ALIPAY = { ALIPAY_APP_ID: ALIPAY_STANDIN_KEYS.appId, ALIPAY_PUBLIC_KEY: ALIPAY_STANDIN_KEYS.platformPublicKeyBare };
  const ALIPAY_QUERY = { ...ALIPAY, ALIPAY_PRIVATE_KEY: ALIPAY_STANDIN_KEYS.appPrivatePkcs8Pem };
  const WECHATPAY = {
    WECHATPAY_MCH_ID: WECHATPAY_STANDIN_KEYS.mchId,
    WECHATPAY_APIV3_KEY: 'Vw3xK9pQ2mR7tY5uB8nL4cJ6hF1dS0aZ',
    WECHATPAY_PLATFORM_KEYS: WECHATPAY_STANDIN_KEYS.platformKeysJson,
  };
  const WECHATPAY_QUERY = {
    ...WECHATPAY,
    WECHATPAY_MCH_PRIVATE_KEY: WECHATPAY_STANDIN_KEYS.merchantPrivateKeyPem,
    WECHATPAY_MCH_SERIAL: WECHATPAY_STANDIN_KEYS.merchantSerial,
  };
  const STRIPE_KEY = 'sk_test_doctorReconcile0123456789';
  /** A production configuration every other check passes with (fresh strong values, never printed). */
  const production = () => ({
    NODE_ENV: 'production',
    LOG_LEVEL: 'silent',
    DATABASE_URL: ctx.database.url,
    API_KEYS: randomBytes(24).toString('hex'),
    GATEWAY_SECRET: randomBytes(24).toString('hex'),
    NOTIFY_SECRET: `whsec_${randomBytes(32).toString('base64')}`,
    ADMIN_PASSWORD: randomBytes(12).toString('hex'),
    SESSION_SECRET: randomBytes(24).toString('hex'),
    METRICS_TOKEN: randomBytes(16).toString('hex'),
  });

  it('names the gateways that can be asked and what each other configured gateway needs, without failing for them', async () => {
    const run = await doctor({
      ...TEST_ENV,
      DATABASE_URL: ctx.database.url,
      ...ALIPAY_QUERY,
      ...WECHATPAY,
      STRIPE_WEBHOOK_SECRET: STRIPE_STANDIN_KEYS.webhookSecret,
    });
    expectAllPassed(run, LOCAL_CHECKS.length);
    expect(line(run, 'reconciliation')).toBe(
      '✓ reconciliation: sandbox, alipay can be asked; generic cannot (set GENERIC_QUERY_URL); wechatpay cannot (set WECHATPAY_MCH_PRIVATE_KEY and WECHATPAY_MCH_SERIAL); stripe cannot (set STRIPE_SECRET_KEY)',
    );
    expectNoSecrets(run, [ALIPAY_STANDIN_KEYS.appPrivatePkcs8Pem.split('\n')[1]!, WECHATPAY.WECHATPAY_APIV3_KEY]);
  });

  it('refunds: the generic gateway with GENERIC_REFUND_URL; without GENERIC_QUERY_URL a warning that a lost refund notification stays pending', async () => {
    const base = { ...TEST_ENV, DATABASE_URL: ctx.database.url, GENERIC_REFUND_URL: 'https://pay.example.com/refund' };
    const both = await doctor({ ...base, GENERIC_QUERY_URL: 'https://pay.example.com/query' });
    expect(line(both, 'refunds')).toBe('✓ refunds: generic, sandbox can refund');
    const noQuery = await doctor(base);
    expect(line(noQuery, 'refunds')).toBe(
      '⚠ refunds: generic, sandbox can refund; GENERIC_QUERY_URL is not set, so a generic refund whose notification is lost stays pending until an operator looks',
    );
    expect(noQuery.code).toBe(0);
  });

  it('lists every gateway that can be asked, and only gateways that are configured', async () => {
    const run = await doctor({
      ...TEST_ENV,
      DATABASE_URL: ctx.database.url,
      SANDBOX_ENABLED: 'false',
      GENERIC_QUERY_URL: 'https://pay.example.com/query',
      ...WECHATPAY_QUERY,
      STRIPE_SECRET_KEY: STRIPE_KEY,
    });
    expectAllPassed(run, LOCAL_CHECKS.length);
    expect(line(run, 'reconciliation')).toBe('✓ reconciliation: generic, wechatpay, stripe can be asked');
    expect(line(run, 'refunds')).toBe('✓ refunds: wechatpay, stripe can refund; generic cannot (set GENERIC_REFUND_URL)');
    expectNoSecrets(run, [STRIPE_KEY, WECHATPAY_STANDIN_KEYS.merchantPrivateKeyPem.split('\n')[1]!]);
  });

  it('production: ✓ with no optional gateway at all, and with https or plain http to loopback gateway APIs', async () => {
    const bare = await doctor(production());
    expectAllPassed(bare, LOCAL_CHECKS.length);
    expect(line(bare, 'reconciliation')).toBe('✓ reconciliation: no gateway can be asked; generic cannot (set GENERIC_QUERY_URL)');
    const local = await doctor({
      ...production(),
      ...ALIPAY_QUERY,
      ALIPAY_GATEWAY_URL: 'http://127.0.0.1:9000/gateway.do',
      ...WECHATPAY_QUERY,
      WECHATPAY_API_BASE: 'http://[::1]:9001',
      STRIPE_SECRET_KEY: STRIPE_KEY,
      STRIPE_API_BASE: 'http://localhost:12111',
    });
    expectAllPassed(local, LOCAL_CHECKS.length);
    expect(line(local, 'reconciliation')).toBe('✓ reconciliation: alipay, wechatpay, stripe can be asked; generic cannot (set GENERIC_QUERY_URL)');
  });

  it.each([
    ['ALIPAY_GATEWAY_URL', { ...ALIPAY_QUERY, ALIPAY_GATEWAY_URL: 'http://openapi.alipay.com/gateway.do' }, 'openapi.alipay.com', 'alipay'],
    ['WECHATPAY_API_BASE', { ...WECHATPAY_QUERY, WECHATPAY_API_BASE: 'http://10.0.0.8:8080' }, '10.0.0.8', 'wechatpay'],
    ['STRIPE_API_BASE', { STRIPE_SECRET_KEY: STRIPE_KEY, STRIPE_API_BASE: 'http://stripe-proxy.internal' }, 'stripe-proxy.internal', 'stripe'],
  ])('production: %s in plain http to a host that is not loopback is ✗', async (name, env, host, gateway) => {
    const run = await doctor({ ...production(), ...env });
    expect(run.code).toBe(1);
    expect(run.checks.filter((l) => l.startsWith('✗'))).toEqual([
      `✗ reconciliation: ${name} is plain http to ${host}: use https (plain http only to this host's loopback); ${gateway} can be asked; generic cannot (set GENERIC_QUERY_URL)`,
    ]);
    expect(run.stdout).toContain(`doctor: 1 of ${LOCAL_CHECKS.length} checks failed`);
    expectNoSecrets(run, [STRIPE_KEY]);
  });

  it('elsewhere plain http to a host that is not loopback is a warning, and an unused gateway URL is not judged', async () => {
    const run = await doctor({ ...TEST_ENV, DATABASE_URL: ctx.database.url, STRIPE_SECRET_KEY: STRIPE_KEY, STRIPE_API_BASE: 'http://stripe-proxy.internal' });
    expect(run.code).toBe(0);
    expect(line(run, 'reconciliation')).toBe(
      "⚠ reconciliation: STRIPE_API_BASE is plain http to stripe-proxy.internal: use https (plain http only to this host's loopback), doctor fails it in production; sandbox, stripe can be asked; generic cannot (set GENERIC_QUERY_URL)",
    );
    const unused = await doctor({ ...production(), ...ALIPAY, ALIPAY_GATEWAY_URL: 'http://openapi.alipay.com/gateway.do' });
    expectAllPassed(unused, LOCAL_CHECKS.length);
    expect(line(unused, 'reconciliation')).toBe(
      '✓ reconciliation: no gateway can be asked; generic cannot (set GENERIC_QUERY_URL); alipay cannot (set ALIPAY_PRIVATE_KEY)',
    );
  });
});

/** The app of `ctx` listening on a free loopback port, as `npm start` would serve it. */
async function serve(ctx: TestContext): Promise<{ base: string; close(): Promise<void> }> {
  const server = ctx.app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { base, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** Each self-test step's line prefix, in order; `POST /notify (duplicate)` only follows an accepted payment. */
const STEPS = [
  'GET /healthz',
  'GET /readyz',
  'POST /api/orders',
  'POST /notify',
  'POST /notify (duplicate)',
  'GET /api/orders/',
  'GET /query_order?action=status',
];
const stepLine = (run: DoctorRun, step: string) =>
  run.checks.find((l) => l.slice(2).startsWith(`self-test ${step}`) && !l.slice(2 + `self-test ${step}`.length).startsWith(' ('));
const stepLines = (run: DoctorRun) => STEPS.map((step) => stepLine(run, step));
const createdOrderNo = (run: DoctorRun) => /created (doctor_\w+) \(0\.01 CNY\)/.exec(run.stdout)?.[1];

describe.each(ENGINES)('npm run doctor -- --url … --api-key … (self-test on %s)', (engine) => {
  let ctx: TestContext;
  let server: Awaited<ReturnType<typeof serve>>;
  let base: string;
  beforeAll(async () => {
    ctx = await createTestContext(engine);
    server = await serve(ctx);
    base = server.base;
  });
  afterAll(async () => {
    await server?.close();
    await ctx?.close();
  });

  const orderRow = (orderNo: string) => ctx.db.kysely.selectFrom('orders').selectAll().where('order_no', '=', orderNo).executeTakeFirstOrThrow();
  const logsOf = (orderNo: string) =>
    ctx.db.kysely.selectFrom('payment_logs').select(['verdict', 'transaction_id', 'gateway', 'kind']).where('order_no', '=', orderNo).orderBy('id').execute();

  it('creates an order, pays it with a signed notification (and its duplicate), reads and queries it as paid', async () => {
    const run = await doctor({ ...TEST_ENV, DATABASE_URL: ctx.database.url }, ['--url', base, '--api-key', TEST_API_KEY]);
    expectAllPassed(run, LOCAL_CHECKS.length + STEPS.length);
    expect(run.checks.slice(LOCAL_CHECKS.length).map((l) => l.slice(0, 2))).toEqual(STEPS.map(() => '✓ '));
    for (const step of stepLines(run)) expect(step).toMatch(/^✓ /);
    const orderNo = createdOrderNo(run);
    expect(orderNo).toMatch(/^doctor_\d+/);
    expect(stepLine(run, 'POST /notify')).toMatch(
      /^✓ self-test POST \/notify: HTTP 200 paid doctor_\w+ as doctor-\d+ \(HMAC-SHA256 with the GATEWAY_SECRET from the configuration\)/,
    );
    expect(stepLine(run, 'POST /notify (duplicate)')).toMatch(/^✓ .*HTTP 200 .*accepted, status paid/);
    expect(stepLine(run, 'GET /api/orders/')).toMatch(/found, status paid, payment doctor-\d+ applied once/);
    expect(stepLine(run, 'GET /query_order?action=status')).toMatch(/HTTP 200 status paid/);

    const transactionId = /as (doctor-\d+) /.exec(stepLine(run, 'POST /notify')!)?.[1];
    const row = await orderRow(orderNo!);
    expect(row).toMatchObject({ amount_minor: 1, currency: 'CNY', status: 'paid', transaction_id: transactionId });
    expect(row.paid_at).not.toBeNull();
    expect(await logsOf(orderNo!)).toEqual([
      { verdict: 'applied', transaction_id: transactionId, gateway: 'generic', kind: 'notify' },
      { verdict: 'duplicate', transaction_id: transactionId, gateway: 'generic', kind: 'notify' },
    ]);
    expectNoSecrets(run, [TEST_API_KEY, TEST_GATEWAY_SECRET]);
  });

  it("shows the server's bad_signature answer for a wrong --gateway-secret and leaves the order pending", async () => {
    const wrongSecret = 'wrong-gateway-secret-0123456789';
    const run = await doctor({ ...TEST_ENV, DATABASE_URL: ctx.database.url }, ['--url', base, '--api-key', TEST_API_KEY, '--gateway-secret', wrongSecret]);
    expect(run.code).toBe(1);
    const [healthz, readyz, create, pay, duplicate, get, query] = stepLines(run);
    for (const step of [healthz, readyz, create]) expect(step).toMatch(/^✓ /);
    expect(pay).toMatch(
      /^✗ self-test POST \/notify: HTTP 401 bad_signature: .* — the GATEWAY_SECRET from --gateway-secret is not the server's: give the server's with GATEWAY_SECRET=… or --gateway-secret …$/,
    );
    expect(duplicate).toBeUndefined();
    expect(get).toMatch(/^✓ .*found, status pending \(\d+ ms\)$/);
    expect(query).toMatch(/^✓ .*status pending/);
    const total = LOCAL_CHECKS.length + STEPS.length - 1;
    expect(run.checks).toHaveLength(total);
    expect(run.stdout).toContain(`doctor: 1 of ${total} checks failed`);

    const orderNo = createdOrderNo(run)!;
    expect(await orderRow(orderNo)).toMatchObject({ status: 'pending', transaction_id: null, paid_at: null });
    expect((await logsOf(orderNo)).map((l) => l.verdict)).toEqual(['bad_signature']);
    expectNoSecrets(run, [wrongSecret, TEST_GATEWAY_SECRET, TEST_API_KEY]);
  });

  it('fails the payment with instructions when no GATEWAY_SECRET is known here, and still reads the order', async () => {
    const run = await doctor({ ...TEST_ENV, DATABASE_URL: ctx.database.url, GATEWAY_SECRET: undefined }, ['--url', base, '--api-key', TEST_API_KEY]);
    expect(run.code).toBe(1);
    expect(line(run, 'secret GATEWAY_SECRET')).toMatch(/^✓ .*will be generated/);
    const [, , create, pay, duplicate, get, query] = stepLines(run);
    expect(create).toMatch(/^✓ /);
    expect(pay).toBe(
      `✗ self-test POST /notify: not attempted: no GATEWAY_SECRET is known here to sign the payment notification with (not configured and none stored in system_config); give the server's: GATEWAY_SECRET=… npm run doctor -- --url ${base} --api-key … (or --gateway-secret …)`,
    );
    expect(duplicate).toBeUndefined();
    expect(get).toMatch(/^✓ .*status pending/);
    expect(query).toMatch(/^✓ .*status pending/);
    expect(run.stdout).toContain(`doctor: 1 of ${LOCAL_CHECKS.length + STEPS.length - 1} checks failed`);
    expect(await orderRow(createdOrderNo(run)!)).toMatchObject({ status: 'pending' });
    expect(await logsOf(createdOrderNo(run)!)).toEqual([]);
  });

  it('fails the authenticated steps with a wrong API key, without printing it or paying anything', async () => {
    const wrongKey = 'wrong-api-key-0123456789abcdef';
    const run = await doctor({ ...TEST_ENV, DATABASE_URL: ctx.database.url }, [`--url=${base}/`, `--api-key=${wrongKey}`]);
    expect(run.code).toBe(1);
    const [healthz, readyz, create, pay, duplicate, get, query] = stepLines(run);
    expect(healthz).toMatch(/^✓ /);
    expect(readyz).toMatch(/^✓ /);
    for (const step of [create, get, query]) expect(step).toMatch(/^✗ .*HTTP 401 unauthorized/);
    expect(pay).toBe('✗ self-test POST /notify: not attempted: the order was not created');
    expect(duplicate).toBeUndefined();
    expect(run.stdout).toContain(`doctor: 4 of ${LOCAL_CHECKS.length + STEPS.length - 1} checks failed`);
    expectNoSecrets(run, [wrongKey]);
  });

  it('rejects --url without --api-key, and --gateway-secret without --url, as usage errors without echoing the secret', async () => {
    const run = await doctor({ ...TEST_ENV, DATABASE_URL: ctx.database.url }, ['--url', base]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--url and --api-key go together');
    expect(run.checks).toEqual([]);
    const alone = await doctor({ ...TEST_ENV, DATABASE_URL: ctx.database.url }, ['--gateway-secret=some-gateway-secret-0123']);
    expect(alone.code).toBe(2);
    expect(alone.stderr).toContain('--gateway-secret is for the self-test');
    expect(alone.checks).toEqual([]);
    expectNoSecrets(alone, ['some-gateway-secret-0123']);
  });
});

describe('npm run doctor -- --url … in development', () => {
  it('signs the payment with the GATEWAY_SECRET a development start stored in system_config, without printing it', async () => {
    const ctx = await createTestContext('sqlite', { env: { NODE_ENV: 'development', GATEWAY_SECRET: undefined } });
    const server = await serve(ctx);
    try {
      const stored = ctx.config.secrets.GATEWAY_SECRET;
      expect(stored).toMatch(/^[0-9a-f]{48}$/);
      const run = await doctor({ ...TEST_ENV, NODE_ENV: 'development', GATEWAY_SECRET: undefined, DATABASE_URL: ctx.database.url }, [
        '--url',
        server.base,
        '--api-key',
        TEST_API_KEY,
      ]);
      expectAllPassed(run, LOCAL_CHECKS.length + STEPS.length);
      expect(line(run, 'secret GATEWAY_SECRET')).toMatch(/^✓ .*stored in system_config/);
      expect(stepLine(run, 'POST /notify')).toMatch(/HMAC-SHA256 with the GATEWAY_SECRET stored in system_config/);
      expect(await ctx.db.kysely.selectFrom('orders').select('status').where('order_no', '=', createdOrderNo(run)!).executeTakeFirst()).toEqual({
        status: 'paid',
      });
      expectNoSecrets(run, [stored, TEST_API_KEY]);
    } finally {
      await server.close();
      await ctx.close();
    }
  });
});
