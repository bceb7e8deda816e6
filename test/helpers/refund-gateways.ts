import { expect } from 'vitest';
import { refundCheckerOf } from '../../src/app.ts';
import type { Engine } from '../../src/db/database.ts';
import { createTestContext, type TestContext } from './context.ts';
import { rowReaders, testClock, type GatewayDriver } from './reconcile.ts';

/*
 * What the end-to-end refund tests of Alipay, WeChat Pay and Stripe share: an app over a fresh database pointed at a
 * gateway stand-in, with the reconcile tests' controllable clock (the real time plus an offset, so the stand-ins'
 * 300 s signature windows hold), orders paid through the gateway's own callback, and readers of what was stored.
 */

export const AFTER_MS = 10_000;
export const NOTIFY_URL = 'https://merchant.example/notify';

export async function startRefundWorld(engine: Engine, gatewayEnv: Record<string, string>) {
  const clock = testClock();
  const ctx: TestContext = await createTestContext(engine, {
    clock: clock.now,
    env: {
      ...gatewayEnv,
      RECONCILE_AFTER: `${AFTER_MS / 1000}s`,
      RECONCILE_SCHEDULE: '20s',
      // One gateway call's limit: each hanging stand-in costs this much.
      NOTIFY_TIMEOUT_MS: '1000',
      SHUTDOWN_TIMEOUT_MS: '3000',
    },
  });
  const rows = rowReaders(ctx.db);
  const k = ctx.db.kysely;
  let seq = 0;

  /** An order of `amount` paid through the gateway's signed callback (the stand-in knows the payment too). */
  async function paidOrder(g: GatewayDriver, amount = '12.34'): Promise<{ no: string; txn: string }> {
    const no = `RG${engine[0]}${g.name.slice(0, 2)}${Date.now().toString(36)}${++seq}`;
    const created = await ctx.api('post', '/api/orders').send({ order_no: no, amount, currency: g.currency, payment_method: g.name, notify_url: NOTIFY_URL });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const txn = g.txnOf(no);
    const minor = Math.round(Number(amount) * 100);
    g.paid(no, txn, minor);
    const paid = await g.callback(ctx.app, clock.now(), no, txn, minor);
    expect(paid.status, paid.text).toBeLessThan(300);
    expect(await rows.order(no)).toMatchObject({ status: 'paid', transaction_id: txn, seq: 1, refunded_minor: 0, refund_reserved_minor: 0 });
    return { no, txn };
  }

  /** Events in the outbox: type, seq and the parsed body. */
  const events = async (no: string) =>
    (await rows.events(no)).map((e) => ({ type: e.type, seq: e.seq, url: e.url, body: JSON.parse(e.payload) as Record<string, unknown> }));

  return {
    ctx,
    clock,
    rows,
    paidOrder,
    events,
    refund: (no: string, body: Record<string, unknown>) => ctx.api('post', `/api/orders/${no}/refunds`).send(body),
    refundRow: (refundNo: string) => k.selectFrom('refunds').selectAll().where('refund_no', '=', refundNo).executeTakeFirstOrThrow(),
    /** The order's refund calls on its timeline: [trigger, action, outcome]. */
    timeline: async (no: string) =>
      (await rows.attempts(no)).filter((a) => a.action === 'refund' || a.action === 'refund_query').map((a) => [a.trigger, a.action, a.outcome]),
    /** The refund payment-log rows of an order: [status, verdict, flagged]. */
    refundLogs: async (no: string) => (await rows.logs(no)).filter((l) => l.status?.startsWith('refund_')).map((l) => [l.status, l.verdict, l.flagged]),
    /** One pass of the pending-refund loop, `ms` from now. */
    async checkAfter(ms = AFTER_MS + 1000) {
      clock.advance(ms);
      return refundCheckerOf(ctx.app).runOnce();
    },
    close: () => ctx.close(),
  };
}

export type RefundWorld = Awaited<ReturnType<typeof startRefundWorld>>;

/** The order settled exactly once by a refund of the whole amount: refunded, one refund.succeeded event with seq 2. */
export async function expectFullyRefundedOnce(w: RefundWorld, no: string, refundNo: string, amount = '12.34') {
  expect(await w.rows.order(no)).toMatchObject({ status: 'refunded', seq: 2, refund_reserved_minor: 0 });
  expect(await w.refundRow(refundNo)).toMatchObject({ status: 'succeeded', check_at: null, check_lease: null, failure_reason: null });
  const detail = await w.ctx.api('get', `/api/orders/${no}`);
  expect(detail.body.data).toMatchObject({ status: 'refunded', refunded_amount: amount, refunds: [{ refund_no: refundNo, status: 'succeeded', amount }] });
  const events = await w.events(no);
  expect(events.map((e) => [e.type, e.seq, e.url])).toEqual([
    ['order.paid', 1, NOTIFY_URL],
    ['refund.succeeded', 2, NOTIFY_URL],
  ]);
  expect(events[1]!.body).toMatchObject({
    type: 'refund.succeeded',
    order_no: no,
    status: 'refunded',
    seq: 2,
    refund_no: refundNo,
    refund_amount: amount,
    refunded_amount: amount,
  });
}

/** A refused refund: failed with `reason`, the reservation released, the order still paid, one refund.failed event. */
export async function expectFailedAndReleased(w: RefundWorld, no: string, refundNo: string, reason: RegExp) {
  expect(await w.rows.order(no)).toMatchObject({ status: 'paid', seq: 2, refunded_minor: 0, refund_reserved_minor: 0 });
  const row = await w.refundRow(refundNo);
  expect(row).toMatchObject({ status: 'failed', check_at: null });
  expect(row.failure_reason).toMatch(reason);
  const events = await w.events(no);
  expect(events.map((e) => [e.type, e.seq])).toEqual([
    ['order.paid', 1],
    ['refund.failed', 2],
  ]);
  expect(events[1]!.body).toMatchObject({ type: 'refund.failed', status: 'paid', refund_no: refundNo, refunded_amount: '0.00' });
}

/** A refund whose outcome is unknown (the answer lost or an error): still pending, the order paid with the amount reserved. */
export async function expectLeftPending(w: RefundWorld, no: string) {
  expect(await w.rows.order(no)).toMatchObject({ status: 'paid', refund_reserved_minor: 1234, seq: 1 });
  expect(await w.timeline(no)).toEqual([['request', 'refund', 'refund_unknown']]);
}

/** Such a refund settled by the loop: by one refund query when the gateway had made it, else sent again after that query. */
export async function expectSettledAfterUnknown(w: RefundWorld, no: string, refundNo: string, madeThere: boolean) {
  await expectFullyRefundedOnce(w, no, refundNo);
  expect(await w.timeline(no)).toEqual([
    ['request', 'refund', 'refund_unknown'],
    ...(madeThere
      ? [['schedule', 'refund_query', 'refund_succeeded']]
      : [
          ['schedule', 'refund_query', 'refund_not_found'],
          ['schedule', 'refund', 'refund_succeeded'],
        ]),
  ]);
}
