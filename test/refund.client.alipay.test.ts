import { AlipaySdk } from 'alipay-sdk';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { RefundTarget } from '../src/reconcile/gateway-client.ts';
import type { AlipayClientOptions } from '../src/reconcile/clients/alipay.client.ts';
import { alipayAnswerBody, startAlipayStandin, ALIPAY_STANDIN_KEYS as KEYS, type AlipayStandin } from './helpers/alipay-standin.ts';
import { alipayClient, failure } from './helpers/gateway-call.ts';

/*
 * Alipay refunds (alipay.trade.refund, alipay.trade.fastpay.refund.query) against the local gateway.do stand-in, which
 * checks each request's RSA2 signature with the app's public key and keeps its own refunds by out_request_no.
 */

let standin: AlipayStandin;
beforeAll(async () => {
  standin = await startAlipayStandin();
});
afterAll(() => standin.close());
beforeEach(() => {
  standin.setBehaviour('normal');
  standin.setRefundMode('normal');
  standin.requests.length = 0;
});

let seq = 0;
const orderNo = () => `RF${Date.now().toString(36)}${(++seq).toString(36)}`.toUpperCase();
const signal = () => new AbortController().signal;
const client = (over: Partial<AlipayClientOptions> = {}) => alipayClient(standin.url, { privateKey: KEYS.appPrivatePkcs8Pem, ...over });
const refunds = (over: Partial<AlipayClientOptions> = {}) => client(over).refunds!;

/** A trade paid at the stand-in (12.34 CNY) and a refund of 5.00 of it. */
function paidOrder(over: Partial<RefundTarget> = {}): RefundTarget {
  const no = over.orderNo ?? orderNo();
  standin.setTrade(no, { status: 'TRADE_SUCCESS', totalAmount: '12.34', tradeNo: `T${no}` });
  return {
    orderNo: no,
    refundNo: `R${no}`,
    amountMinor: 500,
    currency: 'CNY',
    orderAmountMinor: 1234,
    transactionId: `T${no}`,
    reason: '顾客退货',
    gatewayRefundId: null,
    createdAt: new Date(),
    ...over,
  };
}

const biz = (i: number) => JSON.parse(standin.requests[i]!.params.biz_content!) as Record<string, unknown>;

describe('Alipay refunds: alipay.trade.refund', () => {
  it('fund_change Y is succeeded at once; the request is RSA2-signed with the documented biz_content', async () => {
    const t = paidOrder();
    const answer = await refunds().refund(t, signal());
    expect(answer).toEqual({
      state: 'succeeded',
      gatewayRefundId: null,
      fields: expect.objectContaining({ code: '10000', fund_change: 'Y', out_trade_no: t.orderNo, trade_no: t.transactionId }) as unknown,
    });
    expect(standin.requests).toHaveLength(1);
    expect(standin.requests[0]).toMatchObject({ api: 'alipay.trade.refund', signatureValid: true, code: '10000' });
    expect(standin.requests[0]!.params.biz_content).toBe(
      JSON.stringify({ out_trade_no: t.orderNo, trade_no: t.transactionId, refund_amount: '5.00', out_request_no: t.refundNo, refund_reason: '顾客退货' }),
    );
    expect(standin.refund(t.orderNo, t.refundNo)).toEqual({ amount: '5.00', done: true });
  });

  it('leaves out trade_no and refund_reason when there are none, and writes the amount in the currency’s decimals', async () => {
    const t = paidOrder({ transactionId: null, reason: null, amountMinor: 1234 });
    expect(await refunds().refund(t, signal())).toMatchObject({ state: 'succeeded' });
    expect(biz(0)).toEqual({ out_trade_no: t.orderNo, refund_amount: '12.34', out_request_no: t.refundNo });
    // Refunded in full, the trade is closed at Alipay.
    expect(standin.trade(t.orderNo)?.status).toBe('TRADE_CLOSED');
    const yen = paidOrder({ currency: 'JPY', amountMinor: 5, reason: null });
    await refunds().refund(yen, signal());
    expect(biz(1).refund_amount).toBe('5');
  });

  it('sent again (after an unknown outcome), fund_change N: the refund query says it succeeded, with its amount; money moved once', async () => {
    const t = paidOrder();
    await refunds().refund(t, signal());
    standin.requests.length = 0;
    const again = await refunds().refund(t, signal());
    expect(again).toMatchObject({ state: 'succeeded', gatewayRefundId: null, amountMinor: 500 });
    expect(again.fields).toMatchObject({
      alipay_trade_refund_response: { code: '10000', fund_change: 'N' },
      alipay_trade_fastpay_refund_query_response: { refund_status: 'REFUND_SUCCESS', refund_amount: '5.00', out_request_no: t.refundNo },
    });
    expect(standin.requests.map((r) => [r.api, r.signatureValid])).toEqual([
      ['alipay.trade.refund', true],
      ['alipay.trade.fastpay.refund.query', true],
    ]);
    expect(biz(1)).toEqual({ out_trade_no: t.orderNo, out_request_no: t.refundNo });
    expect(standin.trade(t.orderNo)?.status).toBe('TRADE_SUCCESS');
  });

  it('accepted but not processed yet (fund_change N, no refund_status) is pending; once done, the query says succeeded', async () => {
    const t = paidOrder();
    standin.setRefundMode('processing');
    const answer = await refunds().refund(t, signal());
    expect(answer).toMatchObject({ state: 'pending', gatewayRefundId: null, gatewayStatus: 'no refund_status' });
    expect(await refunds().queryRefund(t, signal())).toMatchObject({ state: 'not_found', gatewayStatus: 'no refund_status' });
    standin.completeRefund(t.orderNo, t.refundNo);
    expect(await refunds().queryRefund(t, signal())).toMatchObject({ state: 'succeeded', amountMinor: 500, gatewayRefundId: null });
  });

  it.each([
    ['ACQ.SELLER_BALANCE_NOT_ENOUGH', '卖家余额不足'],
    ['ACQ.TRADE_NOT_ALLOW_REFUND', '当前交易不允许退款'],
    ['ACQ.REASON_TRADE_BEEN_FREEZEN', '请求退款的交易被冻结'],
    ['ACQ.REFUND_AMT_NOT_EQUAL_TOTAL', '退款金额超限'],
  ])('a business refusal %s is failed, with its code and message as the reason', async (subCode, subMsg) => {
    const t = paidOrder();
    standin.setRefundMode({ refuse: subCode, subMsg });
    const answer = await refunds().refund(t, signal());
    expect(answer).toEqual({
      state: 'failed',
      gatewayRefundId: null,
      reason: `${subCode} ${subMsg}`,
      fields: expect.objectContaining({ code: '40004', sub_code: subCode }) as unknown,
    });
    expect(standin.requests).toHaveLength(1);
  });

  it('more than the trade’s rest, an unpaid trade, a finished trade and an unknown trade are failed; nothing is refunded', async () => {
    const t = paidOrder({ amountMinor: 1235 });
    expect(await refunds().refund(t, signal())).toMatchObject({ state: 'failed', reason: 'ACQ.REASON_TRADE_REFUND_FEE_ERR 退款金额无效' });
    expect(standin.refund(t.orderNo, t.refundNo)).toBeUndefined();
    const unpaid = paidOrder();
    standin.setTrade(unpaid.orderNo, { status: 'WAIT_BUYER_PAY', totalAmount: '12.34', tradeNo: unpaid.transactionId! });
    expect(await refunds().refund(unpaid, signal())).toMatchObject({ state: 'failed', reason: 'ACQ.TRADE_STATUS_ERROR 交易状态非法' });
    const finished = paidOrder();
    standin.setTrade(finished.orderNo, { status: 'TRADE_FINISHED', totalAmount: '12.34', tradeNo: finished.transactionId! });
    expect(await refunds().refund(finished, signal())).toMatchObject({ state: 'failed', reason: 'ACQ.TRADE_HAS_FINISHED 交易已完结' });
    const unknown = { ...paidOrder(), orderNo: orderNo() };
    expect(await refunds().refund(unknown, signal())).toMatchObject({ state: 'failed', reason: 'ACQ.TRADE_NOT_EXIST 交易不存在' });
  });
});

describe('Alipay refunds: outcomes that stay unknown are thrown, never failed', () => {
  it('ACQ.SYSTEM_ERROR throws http_status even when the money moved; the refund query then finds it succeeded', async () => {
    const t = paidOrder();
    standin.setRefundMode({ systemError: true, moved: true });
    const err = await failure(refunds().refund(t, signal()));
    expect([err.kind, err.message]).toEqual(['http_status', 'Alipay failed: 40004 Business Failed, ACQ.SYSTEM_ERROR 系统错误']);
    expect(await refunds().queryRefund(t, signal())).toMatchObject({ state: 'succeeded', amountMinor: 500 });
  });

  it('the same refund number with another amount (ACQ.DISCORDANT_REPEAT_REQUEST) throws: the earlier refund may have moved money', async () => {
    const t = paidOrder();
    await refunds().refund(t, signal());
    const err = await failure(refunds().refund({ ...t, amountMinor: 400 }, signal()));
    expect([err.kind, err.message]).toEqual(['refused', 'Alipay refused the request: 40004 Business Failed, ACQ.DISCORDANT_REPEAT_REQUEST 不一致的请求']);
  });

  it.each([
    ['20000 (service unavailable)', { code: '20000', msg: 'Service Currently Unavailable', sub_code: 'isp.unknow-error', sub_msg: '系统繁忙' }, 'http_status'],
    ['a 40004 isp.* error', { code: '40004', msg: 'Business Failed', sub_code: 'isp.unknow-error' }, 'http_status'],
    ['a 40004 without a sub_code', { code: '40004', msg: 'Business Failed' }, 'malformed'],
    ['a code Alipay does not document', { code: '50000', msg: '?' }, 'refused'],
  ])('a signed answer with %s throws %s', async (_name, response, kind) => {
    standin.setBehaviour({ body: alipayAnswerBody('alipay_trade_refund_response', response) });
    expect((await failure(refunds().refund(paidOrder(), signal()))).kind).toBe(kind);
  });

  it('a request Alipay cannot verify (40002, signed with another key) throws not_configured, not failed', async () => {
    const err = await failure(refunds({ privateKey: KEYS.rogue.privateKey }).refund(paidOrder(), signal()));
    expect(standin.requests[0]).toMatchObject({ api: 'alipay.trade.refund', signatureValid: false, code: '40002', subCode: 'isv.invalid-signature' });
    expect(err.kind).toBe('not_configured');
  });

  it('an answer signed with a key that is not Alipay’s is bad_signature, also a refusal; an unsigned one too', async () => {
    standin.setBehaviour('mis-signed');
    const t = paidOrder();
    const err = await failure(refunds().refund(t, signal()));
    expect([err.kind, err.message]).toEqual(['bad_signature', 'The answer of alipay.trade.refund does not verify with ALIPAY_PUBLIC_KEY']);
    expect(standin.refund(t.orderNo, t.refundNo)?.done).toBe(true);
    standin.setRefundMode({ refuse: 'ACQ.SELLER_BALANCE_NOT_ENOUGH' });
    expect((await failure(refunds().refund(paidOrder(), signal()))).kind).toBe('bad_signature');
    standin.setBehaviour('unsigned');
    expect((await failure(refunds().refund(paidOrder(), signal()))).kind).toBe('bad_signature');
    expect((await failure(refunds().queryRefund(t, signal()))).kind).toBe('bad_signature');
    // The client verifies with the configured key: the stand-in's real signature does not verify with another.
    standin.setBehaviour('normal');
    expect((await failure(refunds({ publicKey: KEYS.rogue.publicKey }).refund(paidOrder(), signal()))).kind).toBe('bad_signature');
  });

  it('fund_change N followed by a mis-signed refund query throws bad_signature', async () => {
    const t = paidOrder();
    await refunds().refund(t, signal());
    standin.setBehaviour('mis-signed', 'alipay.trade.fastpay.refund.query');
    expect((await failure(refunds().refund(t, signal()))).kind).toBe('bad_signature');
  });

  it('HTTP 500 is http_status, garbage is malformed, a hang is a timeout (the money moved meanwhile), an aborted call sends nothing', async () => {
    standin.setBehaviour('http-500');
    expect((await failure(refunds().refund(paidOrder(), signal()))).kind).toBe('http_status');
    standin.setBehaviour('garbage');
    expect((await failure(refunds().queryRefund(paidOrder(), signal()))).kind).toBe('malformed');
    standin.setBehaviour('hang');
    const t = paidOrder();
    const started = Date.now();
    const err = await failure(refunds({ timeoutMs: 300 }).refund(t, signal()));
    expect([err.kind, err.message]).toEqual(['timeout', 'Alipay did not answer alipay.trade.refund within 300 ms']);
    expect(Date.now() - started).toBeLessThan(1500);
    standin.setBehaviour('normal');
    expect(await refunds().queryRefund(t, signal())).toMatchObject({ state: 'succeeded', amountMinor: 500 });
    standin.requests.length = 0;
    expect((await failure(refunds().refund(paidOrder(), AbortSignal.abort()))).message).toBe('The call to Alipay was aborted');
    expect(standin.requests).toHaveLength(0);
  });

  it('an answer about another out_trade_no, trade_no or out_request_no is malformed', async () => {
    const t = paidOrder();
    const ok = { code: '10000', msg: 'Success', fund_change: 'Y', out_trade_no: t.orderNo, trade_no: t.transactionId };
    standin.setBehaviour({ body: alipayAnswerBody('alipay_trade_refund_response', { ...ok, out_trade_no: 'SOMEONE-ELSE' }) });
    const err = await failure(refunds().refund(t, signal()));
    expect([err.kind, err.message]).toEqual(['malformed', 'Alipay answered about out_trade_no "SOMEONE-ELSE", not the refund asked']);
    standin.setBehaviour({ body: alipayAnswerBody('alipay_trade_refund_response', { ...ok, trade_no: 'T-OTHER' }) });
    expect((await failure(refunds().refund(t, signal()))).message).toBe('Alipay answered about trade_no "T-OTHER", not the refund asked');
    standin.setBehaviour('normal');
    standin.setRefund(t.orderNo, t.refundNo, { amount: '5.00', done: true, extra: { out_request_no: 'R-OTHER' } });
    expect((await failure(refunds().queryRefund(t, signal()))).message).toBe('Alipay answered about out_request_no "R-OTHER", not the refund asked');
  });
});

describe('Alipay refunds: alipay.trade.fastpay.refund.query', () => {
  it('REFUND_SUCCESS is succeeded with refund_amount in minor units, whatever the amount (the caller compares it)', async () => {
    const t = paidOrder();
    standin.setRefund(t.orderNo, t.refundNo, { amount: '4.00', done: true });
    const answer = await refunds().queryRefund(t, signal());
    expect(answer).toEqual({
      state: 'succeeded',
      gatewayRefundId: null,
      amountMinor: 400,
      fields: expect.objectContaining({ refund_status: 'REFUND_SUCCESS', refund_amount: '4.00', out_request_no: t.refundNo }) as unknown,
    });
    expect(standin.requests[0]).toMatchObject({ api: 'alipay.trade.fastpay.refund.query', signatureValid: true });
  });

  it('a refund Alipay never received is not_found, also for a trade it does not know; another status is pending', async () => {
    const t = paidOrder();
    expect(await refunds().queryRefund(t, signal())).toEqual({
      state: 'not_found',
      gatewayStatus: 'no refund_status',
      fields: { code: '10000', msg: 'Success' },
    });
    const unknown = { ...t, orderNo: orderNo() };
    expect(await refunds().queryRefund(unknown, signal())).toMatchObject({ state: 'not_found', gatewayStatus: 'ACQ.TRADE_NOT_EXIST' });
    standin.setRefund(t.orderNo, t.refundNo, { amount: '5.00', done: true, extra: { refund_status: 'REFUND_PROCESSING' } });
    expect(await refunds().queryRefund(t, signal())).toMatchObject({ state: 'pending', gatewayStatus: 'REFUND_PROCESSING' });
  });

  it.each([
    ['no refund_amount', { refund_amount: undefined }],
    ['an amount that is not decimal text', { refund_amount: '5e2' }],
    ['more decimals than the currency has', { refund_amount: '5.001' }],
    ['a refund_status that is not text', { refund_status: 1 }],
  ])('REFUND_SUCCESS with %s is malformed', async (_name, extra) => {
    const t = paidOrder();
    standin.setRefund(t.orderNo, t.refundNo, { amount: '5.00', done: true, extra });
    expect((await failure(refunds().queryRefund(t, signal()))).kind).toBe('malformed');
  });

  it('ACQ.SYSTEM_ERROR is http_status; another business error is refused', async () => {
    const t = paidOrder();
    const answer = (sub_code: string) => ({
      body: alipayAnswerBody('alipay_trade_fastpay_refund_query_response', { code: '40004', msg: 'Business Failed', sub_code }),
    });
    standin.setBehaviour(answer('ACQ.SYSTEM_ERROR'));
    expect((await failure(refunds().queryRefund(t, signal()))).kind).toBe('http_status');
    standin.setBehaviour(answer('ACQ.INVALID_PARAMETER'));
    expect((await failure(refunds().queryRefund(t, signal()))).kind).toBe('refused');
  });
});

describe('Alipay refunds: cross-checked with the official alipay-sdk', () => {
  const sdk = (over: { alipayPublicKey?: string } = {}) =>
    new AlipaySdk({
      appId: KEYS.appId,
      privateKey: KEYS.appPrivatePkcs1Pem,
      alipayPublicKey: KEYS.platformPublicKeyBare,
      gateway: standin.url,
      timeout: 5000,
      camelcase: false,
      ...over,
    });

  it('the SDK verifies the client’s refund requests with the app public key, and not once a parameter changed', async () => {
    const t = paidOrder();
    standin.setRefundMode('processing');
    await refunds().refund(t, signal());
    const checker = sdk({ alipayPublicKey: KEYS.appPublicKey.export({ type: 'spki', format: 'pem' }) as string });
    expect(standin.requests.map((r) => r.api)).toEqual(['alipay.trade.refund', 'alipay.trade.fastpay.refund.query']);
    for (const { params } of standin.requests) {
      expect(checker.checkNotifySignV2({ ...params })).toBe(true);
      expect(checker.checkNotifySignV2({ ...params, biz_content: `${params.biz_content!} ` })).toBe(false);
    }
  });

  it('the SDK’s own refund and refund query are accepted by the stand-in, and it verifies their signed answers', async () => {
    const t = paidOrder();
    const bizContent = { out_trade_no: t.orderNo, refund_amount: '5.00', out_request_no: t.refundNo };
    const refunded = await sdk().exec('alipay.trade.refund', { bizContent }, { validateSign: true });
    expect(refunded).toMatchObject({ code: '10000', fund_change: 'Y', out_trade_no: t.orderNo });
    const queried = await sdk().exec(
      'alipay.trade.fastpay.refund.query',
      { bizContent: { out_trade_no: t.orderNo, out_request_no: t.refundNo } },
      { validateSign: true },
    );
    expect(queried).toMatchObject({ code: '10000', refund_status: 'REFUND_SUCCESS', refund_amount: '5.00' });
    expect(standin.requests.map((r) => r.signatureValid)).toEqual([true, true]);
    // What the client then reads from the stand-in is what the SDK read.
    expect(await refunds().queryRefund(t, signal())).toMatchObject({ state: 'succeeded', amountMinor: 500 });
    standin.setBehaviour('mis-signed');
    await expect(sdk().exec('alipay.trade.refund', { bizContent }, { validateSign: true })).rejects.toThrow(/验签失败/);
  });
});
