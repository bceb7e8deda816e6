import SQLite from 'better-sqlite3';
import { readFileSync } from 'node:fs';
import { sql, type Kysely } from 'kysely';
import { createConnection } from 'mysql2/promise';
import pino from 'pino';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createApp, stopApp } from '../src/app.ts';
import { ConfigError, loadConfig } from '../src/config.ts';
import { openDatabase, type Database, type Engine } from '../src/db/database.ts';
import type { DB } from '../src/db/schema.ts';
import { createRuntimeSettings } from '../src/settings/runtime-settings.ts';
import { systemClock, toDbTime } from '../src/shared/time.ts';
import { startMaintenance } from '../src/system/maintenance.ts';
import { createTestContext, TEST_API_KEY, TEST_ENV, TEST_GATEWAY_SECRET, type TestContext } from './helpers/context.ts';
import { createTestDatabase } from './helpers/database.ts';
import { ENGINES } from './helpers/engines.ts';
import { signed } from './helpers/gateway-signer.ts';
import { startReceiver } from './helpers/receiver.ts';
import { startService, stopAllServices, waitUntil } from './helpers/service-process.ts';

type Line = { level: number; msg: string };
const capturing = (into: Line[]) => pino({ level: 'info' }, { write: (line: string) => void into.push(JSON.parse(line) as Line) });
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs `hold` on one connection of `db` (in a transaction on SQLite, where that connection is the only one) and
 * keeps it until the returned release is called; `undo` then runs on the same connection (e.g. UNLOCK TABLES).
 */
async function holding(db: Database, hold: (conn: Kysely<DB>) => Promise<unknown>, undo?: (conn: Kysely<DB>) => Promise<unknown>) {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let ready!: () => void;
  const isReady = new Promise<void>((r) => (ready = r));
  const body = async (conn: Kysely<DB>) => {
    await hold(conn);
    ready();
    await released;
    await undo?.(conn);
  };
  const done = db.engine === 'sqlite' ? db.kysely.transaction().execute(body) : db.kysely.connection().execute(body);
  await isReady;
  return async () => {
    release();
    await done;
  };
}

/** Blocks reads and writes of `table` from other connections (a table lock on MySQL, the only connection on SQLite). */
const lockTable = (db: Database, table: string) =>
  db.engine === 'mysql'
    ? holding(
        db,
        (conn) => sql`lock tables ${sql.table(table)} write`.execute(conn),
        (conn) => sql`unlock tables`.execute(conn),
      )
    : holding(db, (conn) => sql`select 1`.execute(conn));

describe('SHUTDOWN_TIMEOUT_MS', () => {
  it('defaults to the larger of 25 s and NOTIFY_TIMEOUT_MS + 5 s', () => {
    expect(loadConfig(TEST_ENV).shutdownTimeoutMs).toBe(25_000);
    expect(loadConfig({ ...TEST_ENV, NOTIFY_TIMEOUT_MS: '30000' }).shutdownTimeoutMs).toBe(35_000);
    expect(loadConfig({ ...TEST_ENV, SHUTDOWN_TIMEOUT_MS: '12000' }).shutdownTimeoutMs).toBe(12_000);
  });

  it('refuses a value that could not wait out one delivery attempt', () => {
    expect(() => loadConfig({ ...TEST_ENV, SHUTDOWN_TIMEOUT_MS: '10999' })).toThrow(ConfigError);
    expect(() => loadConfig({ ...TEST_ENV, SHUTDOWN_TIMEOUT_MS: '10999' })).toThrow(
      /SHUTDOWN_TIMEOUT_MS: must be at least NOTIFY_TIMEOUT_MS \+ 1000 \(11000\)/,
    );
    expect(loadConfig({ ...TEST_ENV, SHUTDOWN_TIMEOUT_MS: '2000', NOTIFY_TIMEOUT_MS: '1000' }).shutdownTimeoutMs).toBe(2000);
  });
});

describe.each(ENGINES)('shutdown in process on %s', (engine) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(engine);
  });
  afterAll(() => ctx.close());

  /** A second handle on the test database, closed by the test like main closes its pools. */
  const ownDb = () => openDatabase(ctx.database.url, { poolSize: 4 });

  it('stopping maintenance waits for a purge in flight, so it never runs into the closed pool', async () => {
    const db = ownDb();
    const expired = toDbTime(new Date(Date.now() - 60_000));
    await db.kysely
      .insertInto('replay_nonces')
      .values({ scope: 'test', nonce: `old-${engine}`, expires_at: expired })
      .execute();
    // Hold the table: the first round's purge waits behind it.
    const release = await lockTable(db, 'replay_nonces');
    const lines: Line[] = [];
    const stop = startMaintenance(db, systemClock, capturing(lines), { retentionDays: null });
    await pause(200);
    let stopped: boolean | undefined;
    const stopping = stop(10_000).then((v) => (stopped = v));
    await pause(200);
    expect(stopped).toBeUndefined(); // still waiting for the purge
    await release();
    await stopping;
    expect(stopped).toBe(true);
    await db.close();
    await pause(100);
    expect(lines.filter((l) => /maintenance failed/.test(l.msg))).toEqual([]);
    expect(await ctx.db.kysely.selectFrom('replay_nonces').select('id').where('nonce', '=', `old-${engine}`).execute()).toEqual([]);
  });

  it('stopping maintenance gives up after its wait and says so', async () => {
    const db = ownDb();
    const release = await lockTable(db, 'replay_nonces');
    const stop = startMaintenance(db, systemClock, capturing([]), { retentionDays: null });
    await pause(100);
    expect(await stop(200)).toBe(false);
    await release();
    await db.close();
  });

  it('stopped runtime settings end their reads: stop() waits for a read in flight, and no read starts after it', async () => {
    const db = ownDb();
    const lines: Line[] = [];
    const settings = createRuntimeSettings({ db, config: ctx.config, clock: systemClock, logger: capturing(lines), refreshMs: 1 });
    // Hold system_config: the lazy read started by a getter waits.
    const release = await lockTable(db, 'system_config');
    settings.callbackAllowlist('generic');
    let stopped = false;
    const stopping = settings.stop().then(() => (stopped = true));
    await pause(200);
    expect(stopped).toBe(false);
    await release();
    await stopping;
    await db.close();
    await pause(5);
    settings.callbackAllowlist('generic');
    settings.retryScheduleMs();
    await pause(100);
    expect(lines.filter((l) => /runtime settings could not be read/.test(l.msg))).toEqual([]);
  });

  it('stopApp ends the runtime settings createApp made itself (not given any): no background read outlives the pool', async () => {
    const db = ownDb();
    const lines: Line[] = [];
    const app = createApp({ config: ctx.config, db, logger: capturing(lines) });
    const release = await lockTable(db, 'system_config');
    // A callback reads the allowlist in force, which starts the settings' background read.
    const answer = request(app)
      .post('/notify')
      .type('form')
      .send(signed({ order_no: 'SD-1', transaction_id: 'T', amount: '1.00', status: 'success' }, 'wrong-secret-0123456789abcdef'))
      .then((r) => r);
    await pause(200);
    let stopped = false;
    const stopping = stopApp(app).then(() => (stopped = true));
    await pause(100);
    expect(stopped).toBe(false);
    await release();
    await stopping;
    await answer;
    await db.close();
    // Long after: a getter would have read again (its value is older than the refresh interval).
    const later = performance.now() + 60_000;
    const now = vi.spyOn(performance, 'now').mockImplementation(() => later);
    try {
      await request(app).post('/notify').type('form').send({ order_no: 'SD-2' });
    } finally {
      now.mockRestore();
    }
    await pause(100);
    expect(lines.filter((l) => /runtime settings could not be read/.test(l.msg))).toEqual([]);
  });
});

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!().catch((err: unknown) => console.warn('cleanup failed:', err));
});

/**
 * SIGTERM while a delivery's record is slow to commit: the stop waits for the record instead of handing the
 * lease back and closing the pool under it, so the merchant never gets the event a second time.
 */
describe.each(ENGINES)('SIGTERM mid-delivery on %s', (engine: Engine) => {
  it('waits for the delivery to be recorded, exits 0, and a restart delivers nothing again', { timeout: 90_000 }, async () => {
    const database = await createTestDatabase(engine);
    cleanups.push(() => database.drop());
    const db = openDatabase(database.url, { poolSize: 2 });
    cleanups.push(() => db.close());
    // The merchant answers at once, but first makes the record of the attempt wait (see lockAttempts).
    let unlock: (() => Promise<void>) | undefined;
    const merchant = await startReceiver(async (n, res) => {
      if (n === 0) unlock = await lockAttempts(engine, database.url);
      res.end('ok');
    });
    cleanups.push(() => merchant.close());
    cleanups.push(async () => unlock?.());
    cleanups.push(() => stopAllServices());
    const env = {
      ...TEST_ENV,
      LOG_LEVEL: 'warn',
      DATABASE_URL: database.url,
      NOTIFY_POLL_INTERVAL_MS: '200',
      NOTIFY_TIMEOUT_MS: '1000',
      SHUTDOWN_TIMEOUT_MS: '20000',
    };
    const a = await startService('A', env);
    const orderNo = `SIG${Date.now().toString(36)}`;
    const created = await fetch(`${a.baseUrl}/api/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': TEST_API_KEY },
      body: JSON.stringify({ order_no: orderNo, amount: '10.00', notify_url: merchant.url }),
    });
    expect(created.status).toBe(201);
    const paid = await fetch(`${a.baseUrl}/notify`, {
      method: 'POST',
      body: new URLSearchParams(signed({ order_no: orderNo, transaction_id: `T-${orderNo}`, amount: '10.00', status: 'success' }, TEST_GATEWAY_SECRET)),
    });
    expect(paid.status).toBe(200);
    await merchant.waitFor(1, 10_000);
    await waitUntil('the lock', () => unlock, 5000);
    // To the service's own process, as systemd does (node started directly): tsx would give up on a child whose event loop waits on SQLite's lock.
    process.kill(serviceNodePid(a.pids()), 'SIGTERM');
    await pause(3000); // longer than NOTIFY_TIMEOUT_MS + 1 s, the wait a stop used to allow
    const release = unlock!;
    unlock = undefined;
    await release();
    const exit = await a.exit(20_000);
    expect(a.output()).not.toMatch(/leases were released/);
    expect(exit, a.output()).toEqual({ code: 0, signal: null });

    const event = await db.kysely.selectFrom('notifications').selectAll().where('order_no', '=', orderNo).executeTakeFirstOrThrow();
    expect(event).toMatchObject({ status: 'delivered', attempts: 1, lease_owner: null });
    const b = await startService('B', env);
    await pause(1500); // several polls
    expect(merchant.received).toHaveLength(1);
    b.signal('SIGTERM');
    expect(await b.exit(20_000)).toEqual({ code: 0, signal: null });
  });
});

/** Of a service's process group (tsx and the node process it runs), the node process running src/main.ts. */
function serviceNodePid(pids: number[]): number {
  const parentOf = (pid: number) => Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
  const child = pids.find((pid) => pids.includes(parentOf(pid)));
  if (!child) throw new Error(`no child process among ${pids.join(', ')}`);
  return child;
}

/** Holds what the record of a delivery attempt needs, until the returned function is called. */
async function lockAttempts(engine: Engine, url: string): Promise<() => Promise<void>> {
  if (engine === 'mysql') {
    // The record inserts into notification_attempts first; the lease release (notifications) is not held up.
    const conn = await createConnection({ uri: url });
    await conn.query('LOCK TABLES notification_attempts WRITE');
    return async () => {
      await conn.query('UNLOCK TABLES');
      await conn.end();
    };
  }
  // SQLite has one writer: a write transaction of another connection holds every write of the service (up to its busy_timeout).
  const file = new SQLite(url.slice('sqlite:'.length));
  file.exec('begin immediate');
  return async () => {
    file.exec('rollback');
    file.close();
  };
}
