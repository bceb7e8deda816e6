import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../src/db/database.ts';
import { TEST_API_KEY, TEST_ENV, TEST_GATEWAY_SECRET } from './helpers/context.ts';
import { createTestDatabase } from './helpers/database.ts';
import { MYSQL_URL } from './helpers/engines.ts';
import { signed } from './helpers/gateway-signer.ts';
import { startReceiver } from './helpers/receiver.ts';
import { startService, stopAllServices, waitUntil, type ServiceProcess } from './helpers/service-process.ts';

/**
 * Issue 7 item 2 (DESIGN A3, A7): a real service process takes signed notifications from 32 concurrent clients
 * and is SIGKILLed (its whole process group) mid-load. Every notification that got 200 is committed whole
 * (paid, its `applied` payment log, its outbox event); nothing is half written; and a new process on the
 * same database delivers every pending event, including those the dead process had leased.
 */

const ORDERS = 400;
const CLIENTS = 32;
const KILL_AFTER = 150;
const RECEIVER_DELAY_MS = 300; // a slowish merchant, so a backlog of pending events exists at the kill

if (!MYSQL_URL) console.warn(`\n${'!'.repeat(78)}\n!! MYSQL_URL is not set: the MariaDB crash test (SIGKILL under load) was NOT run.\n${'!'.repeat(78)}\n`);

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!().catch((err: unknown) => console.warn('cleanup failed:', err));
});

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function post(url: string, init: RequestInit): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { method: 'POST', ...init, signal: AbortSignal.timeout(20_000) });
  return { status: res.status, text: await res.text() };
}

type Outcome = { kind: 'answer'; status: number; body: string } | { kind: 'error'; error: string } | { kind: 'unsent' };

async function auditDatabase(db: Database) {
  const orders = await db.kysely.selectFrom('orders').select(['order_no', 'status', 'seq', 'notify_url']).execute();
  const applied = await db.kysely.selectFrom('payment_logs').select(['order_no']).where('verdict', '=', 'applied').execute();
  const events = await db.kysely.selectFrom('notifications').select(['order_no', 'seq', 'event_id', 'status', 'attempts']).execute();
  const appliedBy = new Map<string, number>();
  for (const l of applied) appliedBy.set(l.order_no!, (appliedBy.get(l.order_no!) ?? 0) + 1);
  const eventsBy = new Map<string, number[]>();
  for (const e of events) eventsBy.set(e.order_no, [...(eventsBy.get(e.order_no) ?? []), Number(e.seq)]);
  const statusOf = new Map(orders.map((o) => [o.order_no, o.status]));
  const problems: string[] = [];
  for (const o of orders) {
    const logs = appliedBy.get(o.order_no) ?? 0;
    const seqs = eventsBy.get(o.order_no) ?? [];
    if (o.status === 'paid') {
      if (logs !== 1) problems.push(`${o.order_no}: paid with ${logs} applied log rows`);
      if (o.notify_url && (seqs.length !== 1 || seqs[0] !== 1)) problems.push(`${o.order_no}: paid with events seq [${seqs.join(',')}]`);
      if (Number(o.seq) !== 1) problems.push(`${o.order_no}: paid with seq ${o.seq}`);
    } else {
      if (logs !== 0) problems.push(`${o.order_no}: ${o.status} but ${logs} applied log rows`);
      if (seqs.length !== 0) problems.push(`${o.order_no}: ${o.status} but events seq [${seqs.join(',')}]`);
      if (Number(o.seq) !== 0) problems.push(`${o.order_no}: ${o.status} with seq ${o.seq}`);
    }
  }
  for (const orderNo of appliedBy.keys()) if (!statusOf.has(orderNo)) problems.push(`${orderNo}: applied log rows for an order that does not exist`);
  for (const orderNo of eventsBy.keys()) if (!statusOf.has(orderNo)) problems.push(`${orderNo}: events for an order that does not exist`);
  return { statusOf, events, problems };
}

describe.skipIf(!MYSQL_URL)('crash under load: SIGKILL of a service process on MariaDB', () => {
  it(
    `${CLIENTS} clients, ${ORDERS} orders, killed after ~${KILL_AFTER} answers: every 200 is committed whole; a restart delivers every pending event`,
    { timeout: 180_000 },
    async () => {
      const database = await createTestDatabase('mysql');
      cleanups.push(() => database.drop());
      const db = openDatabase(database.url, { poolSize: 4 });
      cleanups.push(() => db.close());
      const merchant = await startReceiver((_n, res) => {
        setTimeout(() => res.end('ok'), RECEIVER_DELAY_MS);
      });
      cleanups.push(() => merchant.close());
      cleanups.push(() => stopAllServices());
      const env = {
        ...TEST_ENV,
        LOG_LEVEL: 'warn',
        DATABASE_URL: database.url,
        NOTIFY_POLL_INTERVAL_MS: '200',
        NOTIFY_CONCURRENCY: '16',
        NOTIFY_TIMEOUT_MS: '2000', // lease = 2 s + 5 s: the events the dead process held come back 7 s later
        NOTIFY_RETRY_SCHEDULE: '500ms,1s,1s,1s,1s',
        RATE_LIMIT_PER_MINUTE: '1000000',
      };
      const a: ServiceProcess = await startService('A', env);

      const stamp = Date.now().toString(36);
      const orderNos = Array.from({ length: ORDERS }, (_, i) => `K${stamp}-${i}`);
      let next = 0;
      const createWorker = async () => {
        for (let i = next++; i < ORDERS; i = next++) {
          const res = await post(`${a.baseUrl}/api/orders`, {
            headers: { 'content-type': 'application/json', 'x-api-key': TEST_API_KEY },
            body: JSON.stringify({ order_no: orderNos[i], amount: '10.00', notify_url: merchant.url }),
          });
          expect(res.status, res.text).toBe(201);
        }
      };
      const createStarted = Date.now();
      await Promise.all(Array.from({ length: CLIENTS }, createWorker));
      const createMs = Date.now() - createStarted;

      // The load: 32 clients, each sending one signed notification after the other, until the process dies.
      const outcomes: Outcome[] = orderNos.map(() => ({ kind: 'unsent' }));
      let answered = 0;
      let killedAt = 0;
      let answeredAtKill = 0;
      next = 0;
      const notifyWorker = async () => {
        for (let i = next++; i < ORDERS && killedAt === 0; i = next++) {
          const orderNo = orderNos[i]!;
          const params = signed({ order_no: orderNo, transaction_id: `T-${orderNo}`, amount: '10.00', status: 'success' }, TEST_GATEWAY_SECRET);
          try {
            const res = await post(`${a.baseUrl}/notify`, { body: new URLSearchParams(params) });
            outcomes[i] = { kind: 'answer', status: res.status, body: res.text };
            if (++answered >= KILL_AFTER && killedAt === 0) {
              killedAt = Date.now();
              answeredAtKill = answered;
              a.crash(); // SIGKILL to the process group, with up to 31 requests in flight
            }
          } catch (err) {
            outcomes[i] = { kind: 'error', error: String((err as Error).cause ?? err) };
          }
        }
      };
      const loadStarted = Date.now();
      await Promise.race([
        Promise.all(Array.from({ length: CLIENTS }, notifyWorker)),
        pause(60_000).then(() => {
          throw new Error(`the load did not end within 60 s (${answered} answers)`);
        }),
      ]);
      expect(killedAt, 'the process was killed mid-load').toBeGreaterThan(0);
      expect((await a.exit(10_000)).signal).toBe('SIGKILL');
      const loadMs = killedAt - loadStarted;

      const ok = orderNos.filter((_, i) => outcomes[i]!.kind === 'answer' && (outcomes[i] as { status: number }).status === 200);
      const otherAnswers = outcomes.filter((o) => o.kind === 'answer' && o.status !== 200);
      const inFlight = orderNos.filter((_, i) => outcomes[i]!.kind === 'error');
      const unsent = outcomes.filter((o) => o.kind === 'unsent').length;
      expect(otherAnswers, 'every answer before the kill was 200').toEqual([]);
      for (const i of ok.map((o) => orderNos.indexOf(o)))
        expect(JSON.parse((outcomes[i] as { body: string }).body)).toMatchObject({ success: true, data: { status: 'paid' } });
      expect(ok.length).toBeGreaterThanOrEqual(KILL_AFTER);
      expect(unsent, 'the kill happened mid-load, with notifications still to send').toBeGreaterThan(0);

      // The audit, straight from MariaDB.
      const { statusOf, events, problems } = await auditDatabase(db);
      expect(problems, 'half-written callbacks').toEqual([]);
      const notPaidButOk = ok.filter((o) => statusOf.get(o) !== 'paid');
      expect(notPaidButOk, 'acknowledged (200) but not committed').toEqual([]);
      const paid = [...statusOf.values()].filter((st) => st === 'paid').length;
      const inFlightPaid = inFlight.filter((o) => statusOf.get(o) === 'paid').length;
      expect(paid).toBe(ok.length + inFlightPaid); // nothing paid that was never sent
      const pendingAtRestart = events.filter((e) => e.status !== 'delivered');
      console.log(
        `crash: ${ORDERS} orders created in ${createMs} ms; killed after ${answeredAtKill} answers (${loadMs} ms of load): ` +
          `${ok.length} got 200, ${inFlight.length} were in flight (${inFlightPaid} of them committed anyway), ${unsent} unsent; ` +
          `${paid} paid, ${events.length} events, ${pendingAtRestart.length} not yet delivered (${pendingAtRestart.filter((e) => e.status === 'delivering').length} leased by the dead process)`,
      );
      expect(pendingAtRestart.length, 'a backlog of undelivered events at the kill').toBeGreaterThan(0);

      // A new process on the same database delivers every pending event (the dead process's leases expire first).
      const restartedAt = Date.now();
      const b = await startService('B', env);
      await waitUntil(
        `all ${events.length} events delivered after the restart`,
        async () => {
          const rows = await db.kysely.selectFrom('notifications').select('status').where('status', '<>', 'delivered').execute();
          return rows.length === 0;
        },
        60_000,
        200,
        async () =>
          JSON.stringify(
            await db.kysely
              .selectFrom('notifications')
              .select(['order_no', 'status', 'attempts', 'last_error', 'lease_owner'])
              .where('status', '<>', 'delivered')
              .execute(),
          ),
      );
      const deliveredMs = Date.now() - restartedAt;
      const received = merchant.received.map((r) => (JSON.parse(r.body) as { event_id: string }).event_id);
      const got = new Set(received);
      expect(
        events.map((e) => e.event_id).filter((id) => !got.has(id)),
        'events never received',
      ).toEqual([]);
      const dbIds = new Set(events.map((e) => e.event_id));
      expect(
        received.filter((id) => !dbIds.has(id)),
        'received events that are not in the outbox',
      ).toEqual([]);
      console.log(
        `crash: restart delivered the backlog in ${deliveredMs} ms; merchant received ${received.length} requests for ${got.size} distinct events (${received.length - got.size} repeats: at-least-once)`,
      );
      expect(b.output()).not.toMatch(/"level":(50|60)/);

      b.signal('SIGTERM');
      expect(await b.exit(20_000)).toEqual({ code: 0, signal: null });
    },
  );
});
