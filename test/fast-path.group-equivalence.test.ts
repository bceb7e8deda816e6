import type { CompiledQuery, DatabaseConnection } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyGroup, applyOne, type Applied } from '../src/callbacks/callback-apply.ts';
import type { VerifiedCallback } from '../src/callbacks/callback-plan.ts';
import { BatchedTransaction, withBatchedTransaction } from '../src/db/fast-path/batched-transaction.ts';
import type { PaymentOutcome } from '../src/orders/order-transitions.ts';
import { toDbTime } from '../src/shared/time.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';

/** One callback against an order in a given state. */
interface Case {
  name: string;
  /** What happened to the order before: nothing, a payment (transaction id), a close, a failure. */
  before: 'pending' | 'paid TP' | 'closed' | 'failed';
  notifyUrl: boolean;
  callback: {
    transactionId: string;
    outcome: PaymentOutcome;
    amount?: string;
    currency?: string;
    eventKey?: boolean;
    unordered?: boolean;
    pendingOnly?: boolean;
  };
  /** No such order. */
  missing?: boolean;
}

const CASES: Case[] = [
  { name: 'pays a pending order', before: 'pending', notifyUrl: true, callback: { transactionId: 'T1', outcome: 'paid' } },
  { name: 'pays without notify_url', before: 'pending', notifyUrl: false, callback: { transactionId: 'T1', outcome: 'paid' } },
  { name: 'fails a pending order', before: 'pending', notifyUrl: true, callback: { transactionId: 'T1', outcome: 'failed' } },
  { name: 'closes a pending order', before: 'pending', notifyUrl: true, callback: { transactionId: 'T1', outcome: 'closed' } },
  { name: 'repeats the payment', before: 'paid TP', notifyUrl: true, callback: { transactionId: 'TP', outcome: 'paid' } },
  { name: 'pays a paid order again', before: 'paid TP', notifyUrl: true, callback: { transactionId: 'T2', outcome: 'paid' } },
  { name: 'closes after paid', before: 'paid TP', notifyUrl: true, callback: { transactionId: 'TP', outcome: 'closed' } },
  {
    name: 'a stale failure of the paying transaction',
    before: 'paid TP',
    notifyUrl: true,
    callback: { transactionId: 'TP', outcome: 'failed', unordered: true },
  },
  { name: 'pays a closed order', before: 'closed', notifyUrl: true, callback: { transactionId: 'T1', outcome: 'paid' } },
  { name: 'pays a failed order', before: 'failed', notifyUrl: true, callback: { transactionId: 'T1', outcome: 'paid' } },
  { name: 'sandbox pays only pending', before: 'failed', notifyUrl: true, callback: { transactionId: 'T1', outcome: 'paid', pendingOnly: true } },
  { name: 'wrong amount', before: 'pending', notifyUrl: true, callback: { transactionId: 'T1', outcome: 'paid', amount: '9.00' } },
  { name: 'wrong currency', before: 'pending', notifyUrl: true, callback: { transactionId: 'T1', outcome: 'paid', currency: 'USD' } },
  { name: 'unknown order', before: 'pending', notifyUrl: true, missing: true, callback: { transactionId: 'T1', outcome: 'paid' } },
  { name: 'a gateway event id instead of a nonce', before: 'pending', notifyUrl: true, callback: { transactionId: 'T1', outcome: 'paid', eventKey: true } },
];

/**
 * The fast path's first promise: a callback in a group decides exactly as it would alone (the same
 * planCallback on the locked row, the same compare-and-swap). Every case runs twice on twin orders, once
 * inside one group with all the others and once alone, and must leave the same answer and the same rows.
 */
describe.each(ENGINES)('a grouped callback decides as it would alone on %s', (engine) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(engine);
  });
  afterAll(() => ctx.close());

  function verified(orderNo: string, c: Case['callback'], tag: string): VerifiedCallback {
    const now = new Date();
    const key = `${tag}-${orderNo}-${c.transactionId}`;
    return {
      now,
      result: {
        orderNo,
        transactionId: c.transactionId,
        amount: { kind: 'decimal', value: c.amount ?? '8.00' },
        ...(c.currency ? { currency: c.currency } : {}),
        outcome: c.outcome,
        ...(c.eventKey ? { eventKey: key } : { nonce: { scope: 'generic', value: key, expiresAt: new Date(now.getTime() + 600_000) } }),
        ...(c.unordered ? { unordered: true } : {}),
        ...(c.pendingOnly ? { pendingOnly: true } : {}),
      },
      logBase: {
        gateway: 'generic',
        kind: 'notify',
        callbackData: `order_no=${orderNo}`,
        remoteIp: '127.0.0.1',
        now: toDbTime(now),
        transactionId: c.transactionId,
        status: c.outcome,
        currency: null,
        paymentData: '{}',
      },
    };
  }

  async function prepare(orderNo: string, c: Case): Promise<void> {
    if (c.missing) return;
    expect(
      (
        await ctx
          .api('post', '/api/orders')
          .send({ order_no: orderNo, amount: '8.00', currency: 'CNY', ...(c.notifyUrl ? { notify_url: 'https://merchant.example/n' } : {}) })
      ).status,
    ).toBe(201);
    const alone = (callback: Case['callback']) => withBatchedTransaction(ctx.db, (tx) => applyOne(tx, ctx.db.engine, verified(orderNo, callback, 'before')));
    if (c.before === 'paid TP') expect((await alone({ transactionId: 'TP', outcome: 'paid' })).outcome.verdict).toBe('applied');
    if (c.before === 'failed') expect((await alone({ transactionId: 'TF', outcome: 'failed' })).outcome.verdict).toBe('applied');
    if (c.before === 'closed') expect((await ctx.api('post', `/api/orders/${orderNo}/close`)).status).toBe(200);
  }

  /** What a callback left, with its order number written as `#`. */
  async function stateOf(orderNo: string, applied: Applied, nonce: string) {
    const mask = (v: unknown) => JSON.parse(JSON.stringify(v ?? null).replaceAll(orderNo, '#')) as unknown;
    const row = await ctx.db.kysely
      .selectFrom('orders')
      .select(['status', 'seq', 'transaction_id', 'flagged', 'paid_at'])
      .where('order_no', '=', orderNo)
      .executeTakeFirst();
    const events = await ctx.db.kysely.selectFrom('notifications').select(['type', 'seq']).where('order_no', '=', orderNo).orderBy('seq').execute();
    const logs = await ctx.db.kysely
      .selectFrom('payment_logs')
      .select(['verdict', 'flagged', 'message', 'amount_minor'])
      .where('order_no', '=', orderNo)
      .orderBy('id')
      .execute();
    const spent = (await ctx.db.kysely.selectFrom('replay_nonces').select('id').where('nonce', '=', nonce).execute()).length;
    const { order, ...outcome } = applied.outcome;
    return mask({
      outcome,
      order: order ? { status: order.status, seq: order.seq } : null,
      queued: applied.queued,
      row: row ? { ...row, paid_at: row.paid_at !== null } : null,
      events,
      logs,
      spent,
    });
  }

  it('for every kind of callback, one group of all of them equals each alone', async () => {
    const grouped = CASES.map((_, i) => `EQG${i}`);
    const single = CASES.map((_, i) => `EQA${i}`);
    for (let i = 0; i < CASES.length; i++) {
      await prepare(grouped[i]!, CASES[i]!);
      await prepare(single[i]!, CASES[i]!);
    }
    const groupItems = CASES.map((c, i) => verified(grouped[i]!, c.callback, 'g'));
    const groupApplied = await withBatchedTransaction(ctx.db, (tx) => applyGroup(tx, ctx.db.engine, groupItems));
    const aloneItems = CASES.map((c, i) => verified(single[i]!, c.callback, 'a'));
    const aloneApplied: Applied[] = [];
    for (const item of aloneItems) aloneApplied.push(await withBatchedTransaction(ctx.db, (tx) => applyOne(tx, ctx.db.engine, item)));

    for (let i = 0; i < CASES.length; i++) {
      const inGroup = await stateOf(grouped[i]!, groupApplied[i]!, groupItems[i]!.result.nonce?.value ?? groupItems[i]!.result.eventKey!);
      const alone = await stateOf(single[i]!, aloneApplied[i]!, aloneItems[i]!.result.nonce?.value ?? aloneItems[i]!.result.eventKey!);
      expect(inGroup, CASES[i]!.name).toEqual(alone);
    }
    // The table covers what a callback can do: applied, duplicate, refused transitions and refused checks.
    expect(new Set(aloneApplied.map((a) => a.outcome.verdict))).toEqual(new Set(['applied', 'duplicate', 'invalid_state', 'amount_mismatch', 'unknown_order']));
  });

  /** Runs `work` in a batched transaction whose requests to the server are counted. */
  async function counted<T>(work: (tx: BatchedTransaction) => Promise<T>): Promise<{ result: T; requests: string[] }> {
    const requests: string[] = [];
    const result = await ctx.db.batchKysely.connection().execute(async (conn) => {
      const connection = await conn.getExecutor().provideConnection(async (c) => c);
      const counting: DatabaseConnection = {
        executeQuery: (query: CompiledQuery) => (requests.push(query.sql), connection.executeQuery(query)),
        streamQuery: (query: CompiledQuery, chunkSize?: number) => connection.streamQuery(query, chunkSize),
      };
      return work(new BatchedTransaction(conn, ctx.db.engine, counting));
    });
    return { result, requests };
  }

  it.runIf(engine === 'mysql')('the same round trips: two per callback alone, whatever it decides, and two per group', async () => {
    const cases = [CASES[0]!, CASES[4]!, CASES[11]!]; // applied, duplicate, refused (rolled back, then logged)
    const orders = cases.map((_, i) => `EQRT${i}`);
    for (let i = 0; i < cases.length; i++) await prepare(orders[i]!, cases[i]!);
    for (let i = 0; i < cases.length; i++) {
      const { requests } = await counted((tx) => applyOne(tx, ctx.db.engine, verified(orders[i]!, cases[i]!.callback, 'rt')));
      expect(requests, cases[i]!.name).toHaveLength(2);
    }
    const group = CASES.map((c, i) => ({ c, no: `EQRG${i}` }));
    for (const { c, no } of group) await prepare(no, c);
    const { result, requests } = await counted((tx) =>
      applyGroup(
        tx,
        ctx.db.engine,
        group.map(({ c, no }) => verified(no, c.callback, 'rg')),
      ),
    );
    expect(result).toHaveLength(CASES.length);
    expect(requests).toHaveLength(2);
  });
});
