import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyGroup, groupMayRunAlone } from '../src/callbacks/callback-apply.ts';
import type { VerifiedCallback } from '../src/callbacks/callback-plan.ts';
import { withBatchedTransaction } from '../src/db/fast-path/batched-transaction.ts';
import { metricsOf } from '../src/metrics/metrics.registry.ts';
import { toDbTime } from '../src/shared/time.ts';
import { createTestContext, TEST_GATEWAY_SECRET, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';
import { nowSeconds, signed } from './helpers/gateway-signer.ts';

describe.each(ENGINES)('callback group commit on %s', (engine) => {
  let ctx: TestContext;
  let seq = 0;
  beforeAll(async () => {
    // A pool of 4 gives callbacks one transaction at a time on MySQL (SQLite always has one): concurrent callbacks must group.
    ctx = await createTestContext(engine, { env: { DATABASE_POOL_SIZE: '4' } });
  });
  afterAll(() => ctx.close());

  async function order(amount = '8.00', notifyUrl: string | null = 'https://merchant.example/n'): Promise<string> {
    const order_no = `GC${++seq}`;
    expect((await ctx.api('post', '/api/orders').send({ order_no, amount, ...(notifyUrl ? { notify_url: notifyUrl } : {}) })).status).toBe(201);
    return order_no;
  }
  const notify = (order_no: string, transaction_id: string, extra: Record<string, string> = {}) =>
    request(ctx.app)
      .post('/notify')
      .type('form')
      .send(
        signed(
          { order_no, transaction_id, amount: '8.00', status: 'success', timestamp: nowSeconds(), nonce: `n-${order_no}-${transaction_id}`, ...extra },
          TEST_GATEWAY_SECRET,
        ),
      );
  const row = (no: string) => ctx.db.kysely.selectFrom('orders').selectAll().where('order_no', '=', no).executeTakeFirstOrThrow();
  const events = async (no: string) =>
    (await ctx.db.kysely.selectFrom('notifications').select(['type', 'seq']).where('order_no', '=', no).orderBy('seq').execute()).map(
      (e) => `${e.type}#${e.seq}`,
    );
  const verdicts = async (no: string) =>
    (await ctx.db.kysely.selectFrom('payment_logs').select(['verdict', 'flagged']).where('order_no', '=', no).orderBy('id').execute()).map(
      (l) => `${l.verdict}${l.flagged ? '!' : ''}`,
    );
  const nonceStored = async (nonce: string) => (await ctx.db.kysely.selectFrom('replay_nonces').select('id').where('nonce', '=', nonce).execute()).length === 1;

  /** A verified generic callback, as the service hands it to the transaction. */
  function verified(orderNo: string, transactionId: string, opts: { amount?: string; outcome?: 'paid' | 'failed' | 'closed' } = {}): VerifiedCallback {
    const now = new Date();
    return {
      now,
      result: {
        orderNo,
        transactionId,
        amount: { kind: 'decimal', value: opts.amount ?? '8.00' },
        outcome: opts.outcome ?? 'paid',
        nonce: { scope: 'generic', value: `gn-${orderNo}-${transactionId}`, expiresAt: new Date(now.getTime() + 600_000) },
      },
      logBase: {
        gateway: 'generic',
        kind: 'notify',
        callbackData: `order_no=${orderNo}`,
        remoteIp: '127.0.0.1',
        now: toDbTime(now),
        transactionId,
        status: opts.outcome ?? 'paid',
        currency: null,
        paymentData: '{}',
      },
    };
  }

  it('decides every callback of a group as it would alone, and commits them all at once', async () => {
    const [a, b, c, e, f, g] = [await order(), await order(), await order(), await order(), await order(), await order('8.00', null)];
    expect((await notify(b, 'TB')).status).toBe(200);
    expect((await notify(c, 'TC')).status).toBe(200);
    expect((await ctx.api('post', `/api/orders/${f}/close`)).status).toBe(200);
    const missing = `GC-missing-${++seq}`;
    const items = [
      verified(a, 'TA'),
      verified(b, 'TB'), // the same payment again: duplicate
      verified(c, 'TX'), // another payment of a paid order: invalid_state, flagged
      verified(missing, 'TM'),
      verified(e, 'TE', { amount: '9.00' }),
      verified(f, 'TF'), // closed → paid, flagged
      verified(g, 'TG', { outcome: 'failed' }), // no notify_url: no event
    ];
    const applied = await withBatchedTransaction(ctx.db, (tx) => applyGroup(tx, ctx.db.engine, items));

    expect(applied.map((r) => [r.outcome.verdict, r.outcome.status, r.queued])).toEqual([
      ['applied', 200, true],
      ['duplicate', 200, false],
      ['invalid_state', 409, false],
      ['unknown_order', 404, false],
      ['amount_mismatch', 409, false],
      ['applied', 200, true],
      ['applied', 200, false],
    ]);
    expect(await row(a)).toMatchObject({ status: 'paid', transaction_id: 'TA', seq: 1, flagged: 0 });
    expect(await row(b)).toMatchObject({ status: 'paid', transaction_id: 'TB', seq: 1 });
    expect(await row(c)).toMatchObject({ status: 'paid', transaction_id: 'TC', seq: 1 });
    expect(await row(e)).toMatchObject({ status: 'pending', seq: 0 });
    expect(await row(f)).toMatchObject({ status: 'paid', transaction_id: 'TF', seq: 2, flagged: 1 });
    expect(await row(g)).toMatchObject({ status: 'failed', transaction_id: 'TG', seq: 1 });
    expect(await events(a)).toEqual(['order.paid#1']);
    expect(await events(b)).toEqual(['order.paid#1']);
    expect(await events(f)).toEqual(['order.closed#1', 'order.paid#2']);
    expect(await events(g)).toEqual([]);
    expect(await verdicts(a)).toEqual(['applied']);
    expect(await verdicts(b)).toEqual(['applied', 'duplicate']);
    expect(await verdicts(c)).toEqual(['applied', 'invalid_state!']);
    expect(await verdicts(missing)).toEqual(['unknown_order!']);
    expect(await verdicts(e)).toEqual(['amount_mismatch!']);
    expect(await verdicts(f)).toEqual(['applied!']);
    // The guards of refused callbacks (unknown order, wrong amount) are not spent, as when alone.
    const spent = await Promise.all(items.map((i) => nonceStored(i.result.nonce!.value)));
    expect(spent).toEqual([true, true, true, false, false, true, true]);
  });

  it('a repeated nonce refuses the whole group, writes nothing, and may run again one by one', async () => {
    const [x, y] = [await order(), await order()];
    const first = verified(y, 'TY');
    expect((await notify(y, 'TY-original', { nonce: first.result.nonce!.value })).status).toBe(200); // spends the nonce
    const fresh = verified(x, 'TX');
    const err = await withBatchedTransaction(ctx.db, (tx) => applyGroup(tx, ctx.db.engine, [fresh, first])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(groupMayRunAlone(ctx.db.engine, err)).toBe(true);
    expect(await row(x)).toMatchObject({ status: 'pending', seq: 0 });
    expect(await verdicts(x)).toEqual([]);
    expect(await events(x)).toEqual([]);
    expect(await verdicts(y)).toEqual(['applied']);
    expect(await nonceStored(fresh.result.nonce!.value)).toBe(false);
  });

  it('concurrent notifications commit in groups; a replay among them is still refused and the rest applied exactly once', async () => {
    const orders: string[] = [];
    for (let i = 0; i < 30; i++) orders.push(await order());
    const metrics = metricsOf(ctx.app)!;
    const sizes = async () => {
      const text = await metrics.registry.getSingleMetricAsString('callback_transaction_size');
      const value = (name: string) => Number(new RegExp(`^callback_transaction_size_${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
      return { callbacks: value('sum'), transactions: value('count') };
    };
    const before = await sizes();
    // One listening server with keep-alive, so the requests arrive together (supertest opens a server per request).
    const server = ctx.app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const form = (params: Record<string, string>) =>
      fetch(`${base}/notify`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(params).toString(),
      });
    const body = (order_no: string, transaction_id: string, nonce = `n-${order_no}-${transaction_id}`) =>
      signed({ order_no, transaction_id, amount: '8.00', status: 'success', timestamp: nowSeconds(), nonce }, TEST_GATEWAY_SECRET);
    // Two copies of one request (same nonce) for a payment that is also notified on its own: whichever comes first applies it.
    const replayed = body(orders[7]!, `T-${orders[7]}`, 'n-replay-7');
    try {
      const responses = await Promise.all([...orders.map((no) => form(body(no, `T-${no}`))), form(replayed), form(replayed)]);
      const answers = await Promise.all(responses.map(async (r) => ({ status: r.status, code: ((await r.json()) as { code?: string }).code })));
      expect(answers.slice(0, 30).map((a) => a.status)).toEqual(Array(30).fill(200));
      // Of the two copies, exactly one is refused as a replay; the other is applied or a duplicate (200).
      expect(
        answers
          .slice(30)
          .map((a) => a.status)
          .sort(),
      ).toEqual([200, 409]);
      expect(answers.slice(30).find((a) => a.status === 409)?.code).toBe('replayed');
    } finally {
      server.close();
    }
    for (const no of orders) {
      expect(await row(no)).toMatchObject({ status: 'paid', seq: 1, transaction_id: `T-${no}` });
      expect(await events(no)).toEqual(['order.paid#1']);
      expect((await verdicts(no)).sort()).toEqual(no === orders[7] ? ['applied', 'duplicate', 'replayed'] : ['applied']);
    }
    const after = await sizes();
    expect(after.callbacks - before.callbacks).toBe(32);
    // MySQL: fewer transactions than callbacks, some committed together. SQLite's transactions run without
    // yielding to the event loop (better-sqlite3 is synchronous), so nothing queues behind them: each runs alone.
    if (engine === 'mysql') expect(after.transactions - before.transactions).toBeLessThan(32);
    else expect(after.transactions - before.transactions).toBe(32);
  });
});
