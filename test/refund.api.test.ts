import type { ServerResponse } from 'node:http';
import request from 'supertest';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { refundCheckerOf } from '../src/app.ts';
import { createDeliveryContext, type DeliveryContext } from './helpers/delivery-context.ts';
import { ENGINES } from './helpers/engines.ts';
import { TEST_GATEWAY_SECRET, TEST_ENV } from './helpers/context.ts';
import { gatewaySign, signed } from './helpers/gateway-signer.ts';
import { startReceiver, type Received, type Receiver } from './helpers/receiver.ts';

/**
 * Refunds through the API against a generic gateway stand-in on 127.0.0.1 that checks every refund request's
 * signature with the test's own signer, and answers as each test scripts it; settlement by signed notifications.
 */

type Answer = (res: ServerResponse, form: Record<string, string>) => unknown | Promise<unknown>;

const nowS = () => String(Math.floor(Date.now() / 1000));
let nonce = 0;
const nextNonce = () => `n${Date.now().toString(36)}${++nonce}`;

/** A refund request as the stand-in sees it: the form, and whether its signature checked out independently. */
function formOf(entry: Received) {
  const form = Object.fromEntries(new URLSearchParams(entry.body)) as Record<string, string>;
  const signType = (form.sign_type ?? 'MD5') as 'MD5' | 'HMAC-SHA256';
  return { form, signatureOk: form.sign === gatewaySign(form, TEST_GATEWAY_SECRET, signType) };
}

/** The answer to a refund query, signed the way the gateway signs it (A5 over the JSON fields). */
function signedAnswer(fields: Record<string, string>) {
  const body = { ...fields, timestamp: nowS(), sign_type: 'HMAC-SHA256' };
  return JSON.stringify({ ...body, sign: gatewaySign(body, TEST_GATEWAY_SECRET, 'HMAC-SHA256') });
}

describe.each(ENGINES)('refunds API (generic gateway) on %s', (engine) => {
  let ctx: DeliveryContext;
  let gateway: Receiver;
  let merchant: Receiver;
  /** How the stand-in answers the next refund request; 200 "ok" unless a test says otherwise. */
  let answer: Answer;
  let queryAnswer: Answer;
  const hangs: ServerResponse[] = [];

  beforeAll(async () => {
    gateway = await startReceiver(async (_n, res, entry) => {
      const { form, signatureOk } = formOf(entry);
      if (!signatureOk) return res.writeHead(401).end('bad sign');
      // A refund query carries refund_no but no amount.
      if (form.refund_amount === undefined) return queryAnswer(res, form);
      return answer(res, form);
    });
    merchant = await startReceiver();
    ctx = await createDeliveryContext(engine, {
      GENERIC_REFUND_URL: gateway.url,
      GENERIC_QUERY_URL: gateway.url,
      NOTIFY_TIMEOUT_MS: '400',
      RECONCILE_AFTER: '1s',
      RECONCILE_SCHEDULE: '1s',
    });
  });
  afterAll(async () => {
    for (const res of hangs) res.destroy();
    await ctx?.dispatcher.stop();
    await ctx?.close();
    await gateway?.close();
    await merchant?.close();
  });
  beforeEach(() => {
    answer = (res) => res.end('ok');
    queryAnswer = (res, form) => res.end(signedAnswer({ order_no: form.order_no!, refund_no: form.refund_no!, status: 'refund_pending' }));
  });

  const refundsSent = () => gateway.received.map(formOf).filter((r) => r.form.refund_amount !== undefined);
  const order = (no: string) => ctx.db.kysely.selectFrom('orders').selectAll().where('order_no', '=', no).executeTakeFirstOrThrow();
  const refundRow = (no: string) => ctx.db.kysely.selectFrom('refunds').selectAll().where('refund_no', '=', no).executeTakeFirstOrThrow();
  const outbox = (no: string) =>
    ctx.db.kysely.selectFrom('notifications').select(['type', 'seq', 'payload']).where('order_no', '=', no).orderBy('seq').execute();
  const refund = (orderNo: string, body: Record<string, unknown>) => ctx.api('post', `/api/orders/${orderNo}/refunds`).send(body);
  const notify = (params: Record<string, string>, key = TEST_GATEWAY_SECRET) =>
    request(ctx.app)
      .post('/notify')
      .type('form')
      .send(signed({ notify_type: 'refund', timestamp: nowS(), nonce: nextNonce(), ...params }, key, 'HMAC-SHA256'));
  const refundNotice = (orderNo: string, refundNo: string, amount: string, status = 'refund_success') =>
    notify({ order_no: orderNo, refund_no: refundNo, refund_amount: amount, currency: 'CNY', status });

  it('full refund: signed request to the gateway, pending until the signed notification, then refunded with a refund.succeeded event', async () => {
    const no = await ctx.paidOrder(merchant.url, '12.34');
    const created = await refund(no, { amount: '12.34', reason: 'customer returned it', refund_no: `RF-${no}` });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body.data).toMatchObject({
      refund_no: `RF-${no}`,
      order_no: no,
      amount: '12.34',
      currency: 'CNY',
      status: 'pending',
      reason: 'customer returned it',
    });
    const sent = refundsSent().filter((r) => r.form.order_no === no);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.signatureOk).toBe(true);
    expect(sent[0]!.form).toMatchObject({ order_no: no, refund_no: `RF-${no}`, refund_amount: '12.34', currency: 'CNY' });
    expect(await order(no)).toMatchObject({ status: 'paid', refunded_minor: 0, refund_reserved_minor: 1234 });

    const settled = await refundNotice(no, `RF-${no}`, '12.34');
    expect(settled.status, JSON.stringify(settled.body)).toBe(200);
    expect(await order(no)).toMatchObject({ status: 'refunded', refunded_minor: 1234, refund_reserved_minor: 0, seq: 2 });
    expect(await refundRow(`RF-${no}`)).toMatchObject({ status: 'succeeded', check_at: null });
    const detail = await ctx.api('get', `/api/orders/${no}`);
    expect(detail.body.data).toMatchObject({ status: 'refunded', refunded_amount: '12.34', refunds: [{ refund_no: `RF-${no}`, status: 'succeeded' }] });
    const heritage = await ctx.api('get', `/query_order?action=detail&order_no=${no}`);
    expect(heritage.body.data).toMatchObject({ refunded_amount: '12.34', refunds: [{ refund_no: `RF-${no}`, status: 'succeeded' }] });
    expect((await ctx.api('get', `/api/refunds/RF-${no}`)).body.data).toMatchObject({ status: 'succeeded', amount: '12.34' });
    const events = await outbox(no);
    expect(events.map((e) => [e.type, e.seq])).toEqual([
      ['order.paid', 1],
      ['refund.succeeded', 2],
    ]);
    expect(JSON.parse(events[1]!.payload)).toMatchObject({
      refund_no: `RF-${no}`,
      refund_amount: '12.34',
      refunded_amount: '12.34',
      status: 'refunded',
      seq: 2,
    });

    // Delivered to the merchant, signed like every event (checked here with the test's own signer).
    await ctx.waitForStatus(no, 'delivered');
    const delivered = merchant.received.map((r) => JSON.parse(r.body) as Record<string, unknown>).filter((b) => b.order_no === no);
    const body = delivered.find((b) => b.type === 'refund.succeeded')!;
    const { sign, ...rest } = body;
    const strings = Object.fromEntries(
      Object.entries(rest)
        .filter(([, v]) => v !== null)
        .map(([k, v]) => [k, String(v)]),
    );
    expect(sign).toBe(gatewaySign(strings, TEST_ENV.NOTIFY_SECRET!, body.sign_type as 'MD5'));
    expect(delivered.map((b) => b.seq)).toEqual([1, 2]);

    const again = await refund(no, { amount: '0.01' });
    expect([again.status, again.body.code]).toEqual([409, 'invalid_state']);
  });

  it('partial refunds up to the total; one cent more is refund_exceeds_paid; events carry increasing seq and the running total', async () => {
    const no = await ctx.paidOrder(merchant.url, '10.00');
    for (const [i, amount] of ['3.00', '2.50', '4.49'].entries()) {
      const res = await refund(no, { amount, refund_no: `P${i}-${no}` });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
    }
    const over = await refund(no, { amount: '0.02' });
    expect([over.status, over.body.code]).toEqual([409, 'refund_exceeds_paid']);
    expect(over.body.message).toContain('0.01');
    for (const [i, amount] of ['3.00', '2.50', '4.49'].entries()) expect((await refundNotice(no, `P${i}-${no}`, amount)).status).toBe(200);
    expect(await order(no)).toMatchObject({ status: 'paid', refunded_minor: 999, refund_reserved_minor: 0 });
    expect((await refund(no, { amount: '0.01', refund_no: `P3-${no}` })).status).toBe(201);
    expect((await refundNotice(no, `P3-${no}`, '0.01')).status).toBe(200);
    expect(await order(no)).toMatchObject({ status: 'refunded', refunded_minor: 1000, seq: 5 });
    const events = (await outbox(no)).map((e) => JSON.parse(e.payload) as Record<string, unknown>);
    expect(events.map((e) => [e.type, e.seq, e.refunded_amount ?? null])).toEqual([
      ['order.paid', 1, null],
      ['refund.succeeded', 2, '3.00'],
      ['refund.succeeded', 3, '5.50'],
      ['refund.succeeded', 4, '9.99'],
      ['refund.succeeded', 5, '10.00'],
    ]);
    const listed = await ctx.api('get', `/api/orders/${no}/refunds`);
    expect(listed.body.data.map((r: { refund_no: string }) => r.refund_no)).toEqual([`P3-${no}`, `P2-${no}`, `P1-${no}`, `P0-${no}`]);
  });

  it('idempotent by refund_no: identical → 200 with the refund and no second request; different fields or another order → 409 refund_exists', async () => {
    const no = await ctx.paidOrder(merchant.url, '5.00');
    const other = await ctx.paidOrder(merchant.url, '5.00');
    const first = await refund(no, { amount: '1.00', reason: 'r', refund_no: `I-${no}` });
    expect(first.status).toBe(201);
    const before = refundsSent().length;
    const replay = await refund(no, { amount: '1.0', reason: 'r', refund_no: `I-${no}` });
    expect(replay.status, JSON.stringify(replay.body)).toBe(200);
    expect(replay.body.data).toEqual(first.body.data);
    for (const [target, body] of [
      [no, { amount: '2.00', reason: 'r', refund_no: `I-${no}` }],
      [no, { amount: '1.00', reason: 'other', refund_no: `I-${no}` }],
      [other, { amount: '1.00', reason: 'r', refund_no: `I-${no}` }],
    ] as const) {
      const res = await refund(target, body);
      expect([res.status, res.body.code]).toEqual([409, 'refund_exists']);
    }
    expect(refundsSent().length).toBe(before);
    expect(await order(no)).toMatchObject({ refund_reserved_minor: 100 });
    expect(await order(other)).toMatchObject({ refund_reserved_minor: 0 });
  });

  it('validation, unknown order, unpaid order and a gateway without refunds', async () => {
    const no = await ctx.paidOrder(merchant.url, '5.00');
    for (const body of [
      {},
      { amount: '0' },
      { amount: '-1' },
      { amount: '1.001' },
      { amount: 1e21 },
      { amount: '1', refund_no: 'bad no!' },
      { amount: '1', reason: 'x'.repeat(257) },
    ]) {
      const res = await refund(no, body);
      expect([res.status, res.body.code], JSON.stringify(body)).toEqual([400, 'validation_failed']);
      expect(res.body.errors?.length).toBeGreaterThan(0);
    }
    expect((await refund('NO-SUCH-ORDER', { amount: '1' })).status).toBe(404);
    expect((await ctx.api('get', '/api/refunds/NO-SUCH-REFUND')).status).toBe(404);
    const pending = `PEND-${no}`;
    expect((await ctx.api('post', '/api/orders').send({ order_no: pending, amount: '5.00' })).status).toBe(201);
    const unpaid = await refund(pending, { amount: '1' });
    expect([unpaid.status, unpaid.body.code]).toEqual([409, 'invalid_state']);
    const ali = `ALI-${no}`;
    expect((await ctx.api('post', '/api/orders').send({ order_no: ali, amount: '5.00', payment_method: 'alipay' })).status).toBe(201);
    await ctx.db.kysely.updateTable('orders').set({ status: 'paid', transaction_id: 'T' }).where('order_no', '=', ali).execute();
    const notRefundable = await refund(ali, { amount: '1' });
    expect([notRefundable.status, notRefundable.body.code]).toEqual([409, 'not_refundable']);
    expect(notRefundable.body.message).toContain('ALIPAY_PRIVATE_KEY');
    expect(await ctx.db.kysely.selectFrom('refunds').selectAll().where('order_no', 'in', [pending, ali]).execute()).toEqual([]);
  });

  it('a 4xx refusal fails the refund with the body as reason, releases the reservation and sends refund.failed', async () => {
    const no = await ctx.paidOrder(merchant.url, '5.00');
    answer = (res) => res.writeHead(422).end(`insufficient merchant balance ${'x'.repeat(300)}`);
    const res = await refund(no, { amount: '5.00', refund_no: `F-${no}` });
    expect(res.status).toBe(201);
    expect(res.body.data).toMatchObject({ status: 'failed' });
    expect(res.body.data.failure_reason).toMatch(/^insufficient merchant balance x+$/);
    expect(res.body.data.failure_reason).toHaveLength(200);
    expect(await order(no)).toMatchObject({ status: 'paid', refund_reserved_minor: 0, refunded_minor: 0, seq: 2 });
    expect((await outbox(no)).map((e) => e.type)).toEqual(['order.paid', 'refund.failed']);
    answer = (r) => r.end('ok');
    expect((await refund(no, { amount: '5.00' })).status).toBe(201);
  });

  it('5xx and a timeout leave the refund pending (never failed); the loop asks, re-sends what the gateway never got, and settles', async () => {
    const no = await ctx.paidOrder(merchant.url, '8.00');
    answer = (res) => res.writeHead(503).end('busy');
    const busy = await refund(no, { amount: '3.00', refund_no: `U5-${no}` });
    expect(busy.body.data.status).toBe('pending');
    answer = (res) => void hangs.push(res);
    const slow = await refund(no, { amount: '5.00', refund_no: `UT-${no}` });
    expect([slow.status, slow.body.data.status]).toEqual([201, 'pending']);
    expect(await order(no)).toMatchObject({ refund_reserved_minor: 800 });
    const timeline = await ctx.db.kysely.selectFrom('reconcile_attempts').selectAll().where('order_no', '=', no).orderBy('id').execute();
    expect(timeline.map((a) => [a.action, a.outcome])).toEqual([
      ['refund', 'refund_unknown'],
      ['refund', 'refund_unknown'],
    ]);
    const metrics = await request(ctx.app).get('/metrics');
    expect(metrics.text).toMatch(/refund_calls_total\{gateway="generic",action="refund",outcome="unknown"\} [2-9]/);

    // The gateway got the first (it answered 503 after taking it) but never the second.
    queryAnswer = (res, form) =>
      res.end(
        signedAnswer(
          form.refund_no === `U5-${no}`
            ? { order_no: no, refund_no: form.refund_no, status: 'refund_success', refund_amount: '3.00', currency: 'CNY' }
            : { order_no: no, refund_no: form.refund_no!, status: 'refund_not_found' },
        ),
      );
    answer = (res) => res.end('ok');
    await new Promise((r) => setTimeout(r, 1100));
    const sentBefore = refundsSent().filter((r) => r.form.refund_no === `UT-${no}`).length;
    await refundCheckerOf(ctx.app).runOnce();
    expect(await refundRow(`U5-${no}`)).toMatchObject({ status: 'succeeded' });
    expect(await refundRow(`UT-${no}`)).toMatchObject({ status: 'pending' });
    expect(refundsSent().filter((r) => r.form.refund_no === `UT-${no}`).length).toBe(sentBefore + 1);
    expect((await refundNotice(no, `UT-${no}`, '5.00')).status).toBe(200);
    expect(await order(no)).toMatchObject({ status: 'refunded', refunded_minor: 800, refund_reserved_minor: 0 });
  });

  it('a notification that arrives before the synchronous answer settles it; the answer then changes nothing', async () => {
    const no = await ctx.paidOrder(merchant.url, '6.00');
    answer = async (res, form) => {
      const early = await refundNotice(form.order_no!, form.refund_no!, form.refund_amount!);
      expect(early.status).toBe(200);
      res.end('ok');
    };
    const res = await refund(no, { amount: '6.00', refund_no: `E-${no}` });
    expect([res.status, res.body.data.status]).toEqual([201, 'succeeded']);
    expect(await order(no)).toMatchObject({ status: 'refunded', seq: 2 });
    expect((await outbox(no)).map((e) => e.type)).toEqual(['order.paid', 'refund.succeeded']);
  });

  it('an answer contradicting a refund a notification already settled changes nothing and is flagged', async () => {
    const no = await ctx.paidOrder(merchant.url, '4.00');
    answer = async (res, form) => {
      expect((await refundNotice(form.order_no!, form.refund_no!, form.refund_amount!)).status).toBe(200);
      res.writeHead(422).end('refused');
    };
    const res = await refund(no, { amount: '4.00', refund_no: `A1-${no}` });
    expect([res.status, res.body.data.status]).toEqual([201, 'succeeded']);
    expect(await order(no)).toMatchObject({ status: 'refunded', refunded_minor: 400, refund_reserved_minor: 0, seq: 2 });
    expect((await outbox(no)).map((e) => e.type)).toEqual(['order.paid', 'refund.succeeded']);
    const flagged = await ctx.db.kysely
      .selectFrom('payment_logs')
      .select(['verdict', 'flagged', 'status'])
      .where('order_no', '=', no)
      .where('flagged', '=', 1)
      .execute();
    expect(flagged).toEqual([{ verdict: 'invalid_state', flagged: 1, status: 'refund_failed' }]);
    const calls = await ctx.db.kysely.selectFrom('reconcile_attempts').select(['outcome']).where('order_no', '=', no).execute();
    expect(calls.map((c) => c.outcome)).toEqual(['refund_contradicts']);
  });

  it('duplicate, forged, replayed, mismatched and unknown refund notifications change nothing; the odd ones are flagged', async () => {
    const no = await ctx.paidOrder(merchant.url, '7.00');
    expect((await refund(no, { amount: '7.00', refund_no: `D-${no}` })).status).toBe(201);
    expect((await refundNotice(no, `D-${no}`, '7.00')).status).toBe(200);
    const bad = await notify({ order_no: no, refund_no: `D-${no}`, refund_amount: '7.00', currency: 'CNY', status: 'refund_success' }, 'wrong-key');
    expect([bad.status, bad.body.code]).toEqual([401, 'bad_signature']);
    const stale = await request(ctx.app)
      .post('/notify')
      .type('form')
      .send(
        signed(
          {
            notify_type: 'refund',
            order_no: no,
            refund_no: `D-${no}`,
            refund_amount: '7.00',
            status: 'refund_failed',
            timestamp: String(Number(nowS()) - 3600),
          },
          TEST_GATEWAY_SECRET,
        ),
      );
    expect([stale.status, stale.body.code]).toEqual([409, 'replayed']);
    expect(await order(no)).toMatchObject({ status: 'refunded', seq: 2 });

    const params = signed(
      { notify_type: 'refund', order_no: no, refund_no: `D-${no}`, refund_amount: '7.00', status: 'refund_success', timestamp: nowS(), nonce: nextNonce() },
      TEST_GATEWAY_SECRET,
    );
    const dupe = await request(ctx.app).post('/notify').type('form').send(params);
    expect(dupe.status).toBe(200);
    const replayed = await request(ctx.app).post('/notify').type('form').send(params);
    expect([replayed.status, replayed.body.code]).toEqual([409, 'replayed']);
    const contradict = await refundNotice(no, `D-${no}`, '7.00', 'refund_failed');
    expect([contradict.status, contradict.body.code]).toEqual([409, 'invalid_state']);

    const no2 = await ctx.paidOrder(merchant.url, '7.00');
    expect((await refund(no2, { amount: '2.00', refund_no: `M-${no2}` })).status).toBe(201);
    const mismatch = await refundNotice(no2, `M-${no2}`, '7.00');
    expect([mismatch.status, mismatch.body.code]).toEqual([409, 'amount_mismatch']);
    const unknown = await refundNotice(no2, `NOPE-${no2}`, '2.00');
    expect([unknown.status, unknown.body.code]).toEqual([404, 'not_found']);
    const otherOrder = await refundNotice(no, `M-${no2}`, '2.00');
    expect(otherOrder.status).toBe(404);
    expect(await order(no2)).toMatchObject({ status: 'paid', refunded_minor: 0, refund_reserved_minor: 200, seq: 1 });
    expect(await refundRow(`M-${no2}`)).toMatchObject({ status: 'pending' });
    const logs = await ctx.db.kysely
      .selectFrom('payment_logs')
      .select(['verdict', 'flagged', 'status'])
      .where('order_no', 'in', [no, no2])
      .where('status', 'like', 'refund_%')
      .orderBy('id')
      .execute();
    expect(logs.map((l) => [l.verdict, l.flagged])).toEqual([
      ['applied', 0],
      ['duplicate', 0],
      ['replayed', 0],
      ['invalid_state', 1],
      ['amount_mismatch', 1],
      ['unknown_refund', 1],
      ['unknown_refund', 1],
    ]);
    expect((await outbox(no)).map((e) => e.type)).toEqual(['order.paid', 'refund.succeeded']);
  });

  it('50 concurrent refund requests can never refund more than was paid', async () => {
    const no = await ctx.paidOrder(merchant.url, '12.34');
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => refund(no, { amount: '1.00', refund_no: `C${i}-${no}` })));
    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => s === 201)).toHaveLength(12);
    expect(statuses.filter((s) => s === 409)).toHaveLength(38);
    expect(answers.filter((a) => a.status === 409).every((a) => a.body.code === 'refund_exceeds_paid')).toBe(true);
    const rows = await ctx.db.kysely.selectFrom('refunds').select(['amount_minor']).where('order_no', '=', no).execute();
    expect(rows.reduce((s, r) => s + Number(r.amount_minor), 0)).toBe(1200);
    expect(await order(no)).toMatchObject({ refund_reserved_minor: 1200, refunded_minor: 0 });
    // And their notifications, all at once, twice each: each settles once.
    const created = answers.filter((a) => a.status === 201).map((a) => a.body.data.refund_no as string);
    const notes = await Promise.all(
      [...created, ...created].map((refundNo) => refundNotice(no, refundNo, '1.00').then((r) => (r.status === 200 ? 200 : JSON.stringify([r.status, r.body])))),
    );
    expect(notes.filter((s) => s !== 200)).toEqual([]);
    expect(await order(no)).toMatchObject({ status: 'paid', refunded_minor: 1200, refund_reserved_minor: 0, seq: 13 });
    expect((await outbox(no)).map((e) => e.seq)).toEqual(Array.from({ length: 13 }, (_, i) => i + 1));
  });
});
