import { createServer, type Server } from 'node:http';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/app.ts';
import { loadConfig, type AppConfig } from '../src/config.ts';
import { openDatabase, type Database } from '../src/db/database.ts';
import { migrateToLatest } from '../src/db/migrator.ts';
import { createDispatcher, type Dispatcher } from '../src/notifications/dispatcher.ts';
import { createLogger } from '../src/shared/logger.ts';
import { systemClock } from '../src/shared/time.ts';
import { bootstrapSecrets } from '../src/system/secrets.service.ts';
import { TEST_API_KEY, TEST_ENV, TEST_GATEWAY_SECRET } from './helpers/context.ts';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';
import { MYSQL_URL } from './helpers/engines.ts';
import { signed } from './helpers/gateway-signer.ts';
import { startReceiver, type Receiver } from './helpers/receiver.ts';
import { waitUntil } from './helpers/service-process.ts';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy.ts';

/**
 * Issue 7 item 1 (DESIGN A3, A7): a TCP proxy between the service and MariaDB is cut. Callbacks answer 503
 * `unavailable` and acknowledge nothing, /readyz turns 503 while /healthz stays 200, the delivery loop keeps
 * polling at its interval (no spin, no crash), and after the link returns the same process recovers: the pool
 * reconnects, requests succeed, pending events are delivered. A cut in the middle of a burst leaves no
 * callback half written. The audits read the database directly, not through the proxy.
 */

const POLL_MS = 200;
const QUIET_MS = 3000;

if (!MYSQL_URL)
  console.warn(`\n${'!'.repeat(78)}\n!! MYSQL_URL is not set: the MariaDB storage-outage tests (TCP proxy cut) were NOT run.\n${'!'.repeat(78)}\n`);

interface LogLine {
  level: number;
  msg?: string;
}

interface Setup {
  database: TestDatabase;
  /** Straight to MariaDB: the auditor's handle and "another instance" that keeps working during the cut. */
  direct: Database;
  /** The service's handle, through the proxy. */
  db: Database;
  proxy: TcpProxy;
  config: AppConfig;
  dispatcher: Dispatcher;
  receiver: Receiver;
  server: Server;
  base: string;
  /** A second app on the direct handle (no delivery loop): another instance sharing the database. */
  otherServer: Server;
  otherBase: string;
  dispatcherLog: LogLine[];
  appLog: LogLine[];
  /** Database operations the delivery loop started (every access to its handle's Kysely instance). */
  loopDbOps: () => number;
  queued: { count: number; onQueued?: (n: number) => void };
}

let s: Setup | undefined;
const cleanups: Array<() => Promise<unknown>> = [];
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
const onUncaught = (err: unknown) => unhandled.push(err);

async function listenOn(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; base: string }> {
  const server = createServer(handler);
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, base: `http://127.0.0.1:${(server.address() as { port: number }).port}` };
}

const closeServer = (server: Server) =>
  new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });

/** Captures pino's JSON lines instead of printing them. */
function capturingLogger(level: string, into: LogLine[]) {
  return pino({ level }, { write: (line: string) => void into.push(JSON.parse(line) as LogLine) });
}

async function setUp(): Promise<Setup> {
  const database = await createTestDatabase('mysql');
  cleanups.push(() => database.drop());
  const direct = openDatabase(database.url, { poolSize: 4 });
  cleanups.push(() => direct.close());
  await migrateToLatest(direct);

  const target = new URL(MYSQL_URL!);
  const proxy = await startTcpProxy({ host: target.hostname || '127.0.0.1', port: Number(target.port || 3306) });
  cleanups.push(() => proxy.close());
  const proxiedUrl = proxy.urlThrough(database.url);

  const baseConfig = loadConfig({
    ...TEST_ENV,
    DATABASE_URL: proxiedUrl,
    NOTIFY_POLL_INTERVAL_MS: String(POLL_MS),
    NOTIFY_RETRY_SCHEDULE: '200ms,200ms,200ms,200ms,200ms',
    NOTIFY_TIMEOUT_MS: '1000',
    NOTIFY_CONCURRENCY: '8',
    RATE_LIMIT_PER_MINUTE: '100000',
  });
  const db = openDatabase(proxiedUrl, { poolSize: baseConfig.database.poolSize });
  cleanups.push(() => db.close());
  const { config } = await bootstrapSecrets(baseConfig, db, systemClock);

  const dispatcherLog: LogLine[] = [];
  const appLog: LogLine[] = [];
  let ops = 0;
  const countedDb: Database = {
    engine: db.engine,
    close: () => db.close(),
    get kysely() {
      ops++;
      return db.kysely;
    },
    // Claims and completions run on the batch pool: each is a database operation of the loop too.
    get batchKysely() {
      ops++;
      return db.batchKysely;
    },
  };
  const dispatcher = createDispatcher({ db: countedDb, config, logger: capturingLogger('info', dispatcherLog), clock: systemClock });
  const queued: Setup['queued'] = { count: 0 };
  const app = createApp({
    config,
    db,
    logger: capturingLogger('error', appLog),
    clock: systemClock,
    onEventQueued: () => {
      queued.count++;
      queued.onQueued?.(queued.count);
      dispatcher.wake();
    },
  });
  dispatcher.start();
  cleanups.push(() => dispatcher.stop(2000));
  const { server, base } = await listenOn(app);
  cleanups.push(() => closeServer(server));

  // The other instance: same secrets, straight to the database, no delivery loop of its own.
  const other = createApp({ config, db: direct, logger: createLogger('silent'), clock: systemClock });
  const { server: otherServer, base: otherBase } = await listenOn(other);
  cleanups.push(() => closeServer(otherServer));

  const receiver = await startReceiver();
  cleanups.push(() => receiver.close());
  return {
    database,
    direct,
    db,
    proxy,
    config,
    dispatcher,
    receiver,
    server,
    base,
    otherServer,
    otherBase,
    dispatcherLog,
    appLog,
    loopDbOps: () => ops,
    queued,
  };
}

const setup = () => {
  if (!s) throw new Error('setup failed');
  return s;
};

let counter = 0;
const newOrderNo = (prefix: string) => `${prefix}${Date.now().toString(36)}${(++counter).toString(36)}`;

interface Answer {
  status: number;
  body: { success?: boolean; code?: string; data?: { status?: string } } | null;
  retryAfter: string | null;
  ms: number;
}

async function call(url: string, init: RequestInit): Promise<Answer> {
  const started = Date.now();
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(20_000) });
  const text = await res.text();
  let body: Answer['body'];
  try {
    body = JSON.parse(text) as Answer['body'];
  } catch {
    body = null;
  }
  return { status: res.status, body, retryAfter: res.headers.get('retry-after'), ms: Date.now() - started };
}

const createOrder = (base: string, orderNo: string, notifyUrl?: string) =>
  call(`${base}/api/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': TEST_API_KEY },
    body: JSON.stringify({ order_no: orderNo, amount: '10.00', ...(notifyUrl ? { notify_url: notifyUrl } : {}) }),
  });

const notify = (base: string, orderNo: string) =>
  call(`${base}/notify`, {
    method: 'POST',
    body: new URLSearchParams(signed({ order_no: orderNo, transaction_id: `T-${orderNo}`, amount: '10.00', status: 'success' }, TEST_GATEWAY_SECRET)),
  });

const get = (base: string, path: string) => call(`${base}${path}`, { method: 'GET' });

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

const CLAIM_FAILED = /claiming due notifications failed/;

/** Per order: status, applied log rows, outbox events — read straight from MariaDB. */
async function audit(direct: Database, orderNos: string[]) {
  const orders = await direct.kysely
    .selectFrom('orders')
    .select(['order_no', 'status', 'seq', 'notify_url', 'transaction_id'])
    .where('order_no', 'in', orderNos)
    .execute();
  const logs = await direct.kysely.selectFrom('payment_logs').select(['order_no', 'verdict']).where('order_no', 'in', orderNos).execute();
  const events = await direct.kysely.selectFrom('notifications').select(['order_no', 'seq', 'event_id', 'status']).where('order_no', 'in', orderNos).execute();
  const byOrder = new Map(
    orderNos.map((o) => [o, { status: undefined as string | undefined, seq: -1, notifyUrl: null as string | null, applied: 0, events: [] as number[] }]),
  );
  for (const o of orders) Object.assign(byOrder.get(o.order_no)!, { status: o.status, seq: Number(o.seq), notifyUrl: o.notify_url });
  for (const l of logs) if (l.verdict === 'applied') byOrder.get(l.order_no!)!.applied++;
  for (const e of events) byOrder.get(e.order_no)!.events.push(Number(e.seq));
  const problems: string[] = [];
  for (const [orderNo, a] of byOrder) {
    if (a.status === undefined) problems.push(`${orderNo}: order missing`);
    else if (a.status === 'paid') {
      if (a.applied !== 1) problems.push(`${orderNo}: paid with ${a.applied} applied log rows`);
      if (a.seq !== 1) problems.push(`${orderNo}: paid with seq ${a.seq}`);
      if (a.notifyUrl && (a.events.length !== 1 || a.events[0] !== 1)) problems.push(`${orderNo}: paid with events seq [${a.events.join(',')}]`);
    } else {
      if (a.applied !== 0) problems.push(`${orderNo}: ${a.status} but ${a.applied} applied log rows`);
      if (a.events.length !== 0) problems.push(`${orderNo}: ${a.status} but events seq [${a.events.join(',')}]`);
      if (a.seq !== 0) problems.push(`${orderNo}: ${a.status} with seq ${a.seq}`);
    }
  }
  // Anywhere in the database: an `applied` row for an order that is not paid.
  const stray = await direct.kysely
    .selectFrom('payment_logs')
    .innerJoin('orders', 'orders.order_no', 'payment_logs.order_no')
    .select(['payment_logs.order_no', 'orders.status'])
    .where('payment_logs.verdict', '=', 'applied')
    .where('orders.status', '<>', 'paid')
    .execute();
  for (const r of stray) problems.push(`${r.order_no}: applied log row but order is ${r.status}`);
  return { byOrder, problems, events };
}

describe.skipIf(!MYSQL_URL)('storage outage: the link to MariaDB is cut by a TCP proxy', () => {
  beforeAll(async () => {
    process.on('unhandledRejection', onUnhandled);
    process.on('uncaughtException', onUncaught);
    s = await setUp();
  });
  afterAll(async () => {
    s?.proxy.restore();
    while (cleanups.length > 0) await cleanups.pop()!().catch((err: unknown) => console.warn('cleanup failed:', err));
    process.off('unhandledRejection', onUnhandled);
    process.off('uncaughtException', onUncaught);
  });

  it('503 unavailable while cut, /healthz stays up, the loop polls at its interval; recovers without restart', { timeout: 60_000 }, async () => {
    const { base, otherBase, proxy, direct, receiver, dispatcherLog } = setup();
    const o1 = newOrderNo('OC'); // paid through this service: refused while cut, accepted after
    const o2 = newOrderNo('OX'); // paid through the other instance during the cut: an event pending for our loop
    const o3 = newOrderNo('OA'); // created through the API: refused while cut, accepted after
    expect((await createOrder(base, o1, receiver.url)).status).toBe(201);
    expect((await createOrder(base, o2, receiver.url)).status).toBe(201);
    expect((await get(base, '/readyz')).status).toBe(200);

    proxy.cut();
    const cutAt = Date.now();
    const paid = await notify(base, o1);
    expect(paid.status, JSON.stringify(paid.body)).toBe(503);
    expect(paid.body).toMatchObject({ success: false, code: 'unavailable' });
    expect(paid.retryAfter).toBe('5');
    const created = await createOrder(base, o3);
    expect(created.status, JSON.stringify(created.body)).toBe(503);
    expect(created.body).toMatchObject({ success: false, code: 'unavailable' });
    const ready = await get(base, '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body).toMatchObject({ success: false, code: 'unavailable' });
    expect((await get(base, '/healthz')).status).toBe(200);
    // A refused connection is answered at once, not after a connect timeout.
    for (const a of [paid, created, ready]) expect(a.ms).toBeLessThan(5000);

    // Nothing was acknowledged, nothing written.
    expect(await direct.kysely.selectFrom('orders').select(['status', 'seq']).where('order_no', '=', o1).executeTakeFirstOrThrow()).toEqual({
      status: 'pending',
      seq: 0,
    });
    expect(await direct.kysely.selectFrom('payment_logs').select('verdict').where('order_no', '=', o1).execute()).toEqual([]);
    expect(await direct.kysely.selectFrom('orders').select('id').where('order_no', '=', o3).execute()).toEqual([]);

    // Another instance, not cut off, pays o2: its event waits for a delivery loop.
    expect((await notify(otherBase, o2)).status).toBe(200);

    // A quiet window with no requests: only the delivery loop touches the database.
    const before = { warnings: dispatcherLog.filter((l) => CLAIM_FAILED.test(l.msg ?? '')).length, ops: setup().loopDbOps(), refused: proxy.stats().refused };
    await pause(QUIET_MS);
    const after = { warnings: dispatcherLog.filter((l) => CLAIM_FAILED.test(l.msg ?? '')).length, ops: setup().loopDbOps(), refused: proxy.stats().refused };
    const delta = { warnings: after.warnings - before.warnings, ops: after.ops - before.ops, refused: after.refused - before.refused };
    const bound = Math.ceil(QUIET_MS / POLL_MS) + 5; // 20
    console.log(
      `outage: during a ${QUIET_MS} ms cut the loop logged ${delta.warnings} claim warnings, started ${delta.ops} database operations, the proxy refused ${delta.refused} connections (bound ${bound})`,
    );
    expect(delta.warnings, 'the loop keeps trying (and says so)').toBeGreaterThanOrEqual(5);
    expect(delta.warnings, 'no spinning').toBeLessThanOrEqual(bound);
    expect(delta.ops).toBeLessThanOrEqual(bound);
    expect(delta.refused).toBeLessThanOrEqual(bound);
    expect(dispatcherLog.filter((l) => l.level >= 50 || (l.level === 40 && !CLAIM_FAILED.test(l.msg ?? '')))).toEqual([]);
    expect(unhandled).toEqual([]);
    expect((await get(base, '/healthz')).status).toBe(200);
    expect(receiver.received).toHaveLength(0);

    proxy.restore();
    const restoredAt = Date.now();
    await waitUntil('/readyz to answer 200 after the link returns', async () => (await get(base, '/readyz')).status === 200, 10_000, 50);
    const readyAfterMs = Date.now() - restoredAt;
    const repaid = await notify(base, o1);
    expect(repaid.status, JSON.stringify(repaid.body)).toBe(200);
    expect(repaid.body).toMatchObject({ success: true, data: { status: 'paid' } });
    const recreated = await createOrder(base, o3);
    expect(recreated.status, JSON.stringify(recreated.body)).toBe(201);

    const events = await direct.kysely.selectFrom('notifications').select(['order_no', 'event_id']).where('order_no', 'in', [o1, o2]).execute();
    expect(events).toHaveLength(2);
    await waitUntil(
      'both events delivered after the link returned',
      async () => {
        const rows = await direct.kysely.selectFrom('notifications').select('status').where('order_no', 'in', [o1, o2]).execute();
        return rows.every((r) => r.status === 'delivered');
      },
      15_000,
      50,
      () => JSON.stringify(receiver.received.map((r) => r.body)),
    );
    const ids = new Set(receiver.received.map((r) => (JSON.parse(r.body) as { event_id: string }).event_id));
    for (const e of events) expect(ids.has(e.event_id), `event of ${e.order_no} delivered`).toBe(true);
    const { problems } = await audit(direct, [o1, o2, o3]);
    expect(problems).toEqual([]);
    expect(unhandled).toEqual([]);
    console.log(
      `outage: cut for ${restoredAt - cutAt} ms; /readyz 200 again ${readyAfterMs} ms after restore; both pending events delivered ${Date.now() - restoredAt} ms after restore`,
    );
  });

  it('a cut in the middle of 50 concurrent callbacks leaves none half written, and every 200 is a paid order', { timeout: 90_000 }, async () => {
    const { base, proxy, direct, receiver, queued, appLog } = setup();
    const N = 50;
    const orderNos = Array.from({ length: N }, (_, i) => newOrderNo(`B${i}-`));
    const created = await Promise.all(orderNos.map((o) => createOrder(base, o, receiver.url)));
    expect(created.map((c) => c.status)).toEqual(orderNos.map(() => 201));

    // Cut from inside the service, right after its 8th commit of the burst: the others are mid-flight.
    const startCount = queued.count;
    let cutAfter = -1;
    queued.onQueued = (n) => {
      if (n - startCount === 8 && !proxy.isCut) {
        proxy.cut();
        cutAfter = n - startCount;
      }
    };
    const started = Date.now();
    const answers = await Promise.all(orderNos.map((o) => notify(base, o).catch((err: unknown) => ({ status: -1, body: null, retryAfter: null, ms: 0, err }))));
    const burstMs = Date.now() - started;
    queued.onQueued = undefined;
    expect(proxy.isCut, 'the cut happened during the burst').toBe(true);
    const statuses = answers.map((a) => a.status);
    const tally = statuses.reduce<Record<number, number>>((t, st) => ({ ...t, [st]: (t[st] ?? 0) + 1 }), {});
    console.log(`outage burst: cut after commit #${cutAfter}; answers ${JSON.stringify(tally)} in ${burstMs} ms; proxy ${JSON.stringify(proxy.stats())}`);
    // Only two answers are allowed: applied (200) or unavailable (503). A 500 would be a storage error taken for a bug.
    expect(answers.filter((a) => a.status !== 200 && a.status !== 503)).toEqual([]);
    for (const a of answers) {
      if (a.status === 200) expect(a.body).toMatchObject({ success: true, data: { status: 'paid' } });
      else expect(a.body).toMatchObject({ success: false, code: 'unavailable' });
    }
    expect(tally[200] ?? 0).toBeGreaterThanOrEqual(8);
    expect(tally[503] ?? 0, 'the cut refused some of the burst').toBeGreaterThan(0);
    expect(appLog.filter((l) => /internal_error/.test(JSON.stringify(l)))).toEqual([]);

    // Audit while still cut, straight from the database.
    const first = await audit(direct, orderNos);
    expect(first.problems).toEqual([]);
    const acked = orderNos.filter((_, i) => answers[i]!.status === 200);
    for (const o of acked) expect(first.byOrder.get(o)!.status, `${o} got 200`).toBe('paid');
    const paidWithout200 = orderNos.filter((o, i) => first.byOrder.get(o)!.status === 'paid' && answers[i]!.status !== 200);
    console.log(
      `outage burst: ${acked.length} acknowledged, ${[...first.byOrder.values()].filter((a) => a.status === 'paid').length} paid in the database (${paidWithout200.length} committed but answered 503: the gateway's retry finds them paid)`,
    );

    // The gateway retries what was refused once the link is back: each one ends paid exactly once.
    proxy.restore();
    await waitUntil('/readyz 200 after restore', async () => (await get(base, '/readyz')).status === 200, 10_000, 50);
    const retried = await Promise.all(orderNos.filter((_, i) => answers[i]!.status !== 200).map((o) => notify(base, o)));
    expect(retried.filter((a) => a.status !== 200)).toEqual([]);
    const second = await audit(direct, orderNos);
    expect(second.problems).toEqual([]);
    expect([...second.byOrder.values()].filter((a) => a.status !== 'paid')).toEqual([]);

    // Every event reaches the merchant (at least once); those whose bookkeeping was cut are retried after their lease.
    const eventIds = new Set(second.events.map((e) => e.event_id));
    expect(eventIds.size).toBe(N);
    await waitUntil(
      `all ${N} burst events delivered`,
      async () => {
        const rows = await direct.kysely.selectFrom('notifications').select('status').where('order_no', 'in', orderNos).execute();
        return rows.every((r) => r.status === 'delivered');
      },
      30_000,
      100,
      async () =>
        JSON.stringify(
          await direct.kysely
            .selectFrom('notifications')
            .select(['order_no', 'status', 'attempts', 'last_error'])
            .where('order_no', 'in', orderNos)
            .where('status', '<>', 'delivered')
            .execute(),
        ),
    );
    const got = new Set(receiver.received.map((r) => (JSON.parse(r.body) as { event_id: string }).event_id));
    expect([...eventIds].filter((id) => !got.has(id))).toEqual([]);
    expect(unhandled).toEqual([]);
  });
});
