import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ALIPAY_STANDIN_KEYS, startAlipayStandin, type AlipayStandin, type AlipayStandinBehaviour } from './helpers/alipay-standin.ts';
import { ENGINES } from './helpers/engines.ts';
import { AFTER_MS, expectFailedAndReleased, expectFullyRefundedOnce, startRefundWorld, type RefundWorld } from './helpers/refund-gateways.ts';
import { alipayDriver, type GatewayDriver } from './helpers/reconcile.ts';

/*
 * Refunds end to end at Alipay: an order paid through /notify/alipay, refunded through the API. The stand-in checks
 * every request's RSA2 signature with the app's public key and keeps its refunds by out_request_no, so a refund sent
 * twice moves money once; its answers are signed with the platform key the app verifies.
 */

describe.each(ENGINES)('refunds at Alipay on %s', (engine) => {
  let alipay: AlipayStandin;
  let g: GatewayDriver;
  let w: RefundWorld;

  beforeAll(async () => {
    alipay = await startAlipayStandin();
    g = alipayDriver(alipay);
    w = await startRefundWorld(engine, {
      ALIPAY_APP_ID: ALIPAY_STANDIN_KEYS.appId,
      ALIPAY_PUBLIC_KEY: ALIPAY_STANDIN_KEYS.platformPublicKeyBare,
      ALIPAY_PRIVATE_KEY: ALIPAY_STANDIN_KEYS.appPrivatePkcs8Pem,
      ALIPAY_GATEWAY_URL: alipay.url,
    });
  });
  afterAll(async () => {
    await w?.close();
    await alipay?.close();
  });
  beforeEach(() => {
    w.clock.reset();
    alipay.setBehaviour('normal');
    alipay.setRefundMode('normal');
  });

  /** The stand-in's requests of `api` about one order, with their biz_content. */
  const calls = (api: string, no: string) =>
    alipay.requests
      .filter((r) => r.api === api)
      .map((r) => ({ ...r, biz: JSON.parse(r.params.biz_content ?? '{}') as Record<string, string> }))
      .filter((r) => r.biz.out_trade_no === no);
  const refundCalls = (no: string) => calls('alipay.trade.refund', no);
  const queryCalls = (no: string) => calls('alipay.trade.fastpay.refund.query', no);

  it('full refund: fund_change Y settles it in the answer; one signed alipay.trade.refund naming our refund_no; refunded, one event', async () => {
    const { no, txn } = await w.paidOrder(g);
    const res = await w.refund(no, { amount: '12.34', reason: '顾客退货' });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const refundNo = res.body.data.refund_no as string;
    expect(res.body.data).toMatchObject({ order_no: no, amount: '12.34', currency: 'CNY', status: 'succeeded', reason: '顾客退货', failure_reason: null });
    expect(res.body.data.completed_at).not.toBeNull();

    const sent = refundCalls(no);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ signatureValid: true, code: '10000' });
    expect(sent[0]!.params).toMatchObject({ app_id: ALIPAY_STANDIN_KEYS.appId, sign_type: 'RSA2' });
    expect(sent[0]!.biz).toMatchObject({ out_trade_no: no, trade_no: txn, refund_amount: '12.34', out_request_no: refundNo });
    expect(alipay.refund(no, refundNo)).toEqual({ amount: '12.34', done: true });
    expect(queryCalls(no)).toEqual([]);

    await expectFullyRefundedOnce(w, no, refundNo);
    expect(await w.timeline(no)).toEqual([['request', 'refund', 'refund_succeeded']]);
    const again = await w.refund(no, { amount: '0.01' });
    expect([again.status, again.body.code]).toEqual([409, 'invalid_state']);
    expect(refundCalls(no)).toHaveLength(1);
  });

  it('partial refunds up to the total; one more than the rest is refund_exceeds_paid and never reaches Alipay', async () => {
    const { no } = await w.paidOrder(g);
    for (const [i, amount] of ['5.00', '4.00'].entries()) {
      const res = await w.refund(no, { amount, refund_no: `P${i}-${no}` });
      expect([res.status, res.body.data?.status]).toEqual([201, 'succeeded']);
    }
    const over = await w.refund(no, { amount: '3.35', refund_no: `PX-${no}` });
    expect([over.status, over.body.code]).toEqual([409, 'refund_exceeds_paid']);
    expect(over.body.message).toContain('3.34');
    expect((await w.refund(no, { amount: '3.34', refund_no: `P2-${no}` })).body.data.status).toBe('succeeded');

    expect(refundCalls(no).map((r) => [r.biz.out_request_no, r.biz.refund_amount, r.signatureValid])).toEqual([
      [`P0-${no}`, '5.00', true],
      [`P1-${no}`, '4.00', true],
      [`P2-${no}`, '3.34', true],
    ]);
    expect(await w.rows.order(no)).toMatchObject({ status: 'refunded', refunded_minor: 1234, refund_reserved_minor: 0, seq: 4 });
    expect((await w.events(no)).map((e) => [e.type, e.seq, e.body.refund_amount ?? null, e.body.refunded_amount ?? null, e.body.status])).toEqual([
      ['order.paid', 1, null, null, 'paid'],
      ['refund.succeeded', 2, '5.00', '5.00', 'paid'],
      ['refund.succeeded', 3, '4.00', '9.00', 'paid'],
      ['refund.succeeded', 4, '3.34', '12.34', 'refunded'],
    ]);
    expect((await w.timeline(no)).map((t) => t[2])).toEqual(['refund_succeeded', 'refund_succeeded', 'refund_succeeded']);
  });

  it('a refusal (ACQ.SELLER_BALANCE_NOT_ENOUGH) fails the refund, releases the reservation and sends refund.failed', async () => {
    const { no } = await w.paidOrder(g);
    alipay.setRefundMode({ refuse: 'ACQ.SELLER_BALANCE_NOT_ENOUGH', subMsg: '卖家余额不足' });
    const res = await w.refund(no, { amount: '12.34', refund_no: `F-${no}` });
    expect([res.status, res.body.data.status, res.body.data.failure_reason]).toEqual([201, 'failed', 'ACQ.SELLER_BALANCE_NOT_ENOUGH 卖家余额不足']);
    await expectFailedAndReleased(w, no, `F-${no}`, /^ACQ\.SELLER_BALANCE_NOT_ENOUGH/);
    expect(await w.timeline(no)).toEqual([['request', 'refund', 'refund_failed']]);
    expect(alipay.refund(no, `F-${no}`)).toBeUndefined();
    // Released: the whole amount can be refunded again, and nothing looks at the failed one later.
    alipay.setRefundMode('normal');
    expect((await w.refund(no, { amount: '12.34', refund_no: `F2-${no}` })).body.data.status).toBe('succeeded');
    await w.checkAfter();
    expect(queryCalls(no)).toEqual([]);
  });

  it.each<[string, AlipayStandinBehaviour | 'system-error']>([
    ['HTTP 500 after the money moved', 'http-500'],
    ['no answer (timeout) after the money moved', 'hang'],
    ['ACQ.SYSTEM_ERROR after the money moved', 'system-error'],
  ])('%s: stays pending, never failed; the loop settles it by one refund query', async (_name, behaviour) => {
    const { no } = await w.paidOrder(g);
    if (behaviour === 'system-error') alipay.setRefundMode({ systemError: true, moved: true });
    else alipay.setBehaviour(behaviour);
    const refundNo = `U-${no}`;
    const res = await w.refund(no, { amount: '12.34', refund_no: refundNo });
    alipay.setBehaviour('normal');
    alipay.setRefundMode('normal');
    expect([res.status, res.body.data.status]).toEqual([201, 'pending']);
    expect(alipay.refund(no, refundNo)?.done).toBe(true);
    expect(await w.rows.order(no)).toMatchObject({ status: 'paid', refund_reserved_minor: 1234, refunded_minor: 0, seq: 1 });
    expect((await w.events(no)).map((e) => e.type)).toEqual(['order.paid']);
    const [attempt] = await w.rows.attempts(no).then((a) => a.filter((x) => x.action === 'refund'));
    expect(attempt).toMatchObject({ trigger: 'request', outcome: 'refund_unknown' });
    expect(attempt!.message).toContain('outcome unknown, stays pending');

    await w.checkAfter(AFTER_MS - 2000);
    expect(queryCalls(no)).toEqual([]); // not due before RECONCILE_AFTER
    w.clock.reset();
    await w.checkAfter();
    const queried = queryCalls(no);
    expect(queried.map((q) => [q.biz.out_request_no, q.signatureValid])).toEqual([[refundNo, true]]);
    expect(refundCalls(no)).toHaveLength(1); // found at Alipay: not sent again
    await expectFullyRefundedOnce(w, no, refundNo);
    expect(await w.timeline(no)).toEqual([
      ['request', 'refund', 'refund_unknown'],
      ['schedule', 'refund_query', 'refund_succeeded'],
    ]);
    await w.checkAfter(60_000);
    expect(queryCalls(no)).toHaveLength(1);
  });

  it('accepted but not yet processed (fund_change N): pending; asked again it is sent again harmlessly, then settled once done', async () => {
    const { no } = await w.paidOrder(g);
    alipay.setRefundMode('processing');
    const refundNo = `N-${no}`;
    expect((await w.refund(no, { amount: '2.00', refund_no: refundNo })).body.data.status).toBe('pending');
    await w.checkAfter();
    // No refund_status yet reads as "not received": the same out_request_no again, which Alipay treats as a repeat.
    expect(await w.refundRow(refundNo)).toMatchObject({ status: 'pending' });
    expect(refundCalls(no).map((r) => r.biz.out_request_no)).toEqual([refundNo, refundNo]);
    expect(alipay.refund(no, refundNo)).toEqual({ amount: '2.00', done: false });

    alipay.completeRefund(no, refundNo);
    w.clock.reset();
    await w.checkAfter(AFTER_MS + 21_000);
    expect(await w.refundRow(refundNo)).toMatchObject({ status: 'succeeded' });
    expect(await w.rows.order(no)).toMatchObject({ status: 'paid', refunded_minor: 200, refund_reserved_minor: 0, seq: 2 });
    expect((await w.events(no)).map((e) => [e.type, e.seq, e.body.refunded_amount ?? null])).toEqual([
      ['order.paid', 1, null],
      ['refund.succeeded', 2, '2.00'],
    ]);
    expect(await w.timeline(no)).toEqual([
      ['request', 'refund', 'refund_pending'],
      ['schedule', 'refund_query', 'refund_not_found'],
      ['schedule', 'refund', 'refund_pending'],
      ['schedule', 'refund_query', 'refund_succeeded'],
    ]);
    expect(refundCalls(no)).toHaveLength(2);
  });
});
