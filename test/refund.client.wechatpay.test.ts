import { request } from 'undici';
import Pay from 'wechatpay-node-v3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { RefundClient, RefundTarget } from '../src/reconcile/gateway-client.ts';
import { createWechatpayClient, type WechatpayClientOptions } from '../src/reconcile/clients/wechatpay.client.ts';
import { startWechatpayStandin, WECHATPAY_STANDIN_KEYS as KEYS, type RefundStatus, type WechatpayStandin } from './helpers/wechatpay-standin.ts';
import { failure, wechatpayClientOptions } from './helpers/gateway-call.ts';

/*
 * The refund API of the WeChat Pay client (申请退款, 查询单笔退款) against the local API v3 stand-in, which checks each
 * request's signature with the merchant public key and signs its answers with a platform key, as WeChat does.
 */

/** The SDK's pluggable HTTP layer (its requests, already signed). */
type IPayRequest = Parameters<Pay['createHttp']>[0];

let standin: WechatpayStandin;
beforeAll(async () => {
  standin = await startWechatpayStandin();
});
afterAll(() => standin.close());
beforeEach(() => {
  standin.setBehaviour('normal');
  standin.setRefundReaction({ status: 'PROCESSING' });
  standin.requests.length = 0;
});

const refunds = (overrides: Partial<WechatpayClientOptions> = {}): RefundClient =>
  createWechatpayClient(wechatpayClientOptions(standin.url, overrides)).refunds!;
const live = () => new AbortController().signal;

let seq = 0;
/** A refund of 300 of an order of 1234 CNY that the stand-in knows as paid (transaction_id 4200…). */
function paidRefund(overrides: Partial<RefundTarget> = {}): RefundTarget {
  const n = `${Date.now()}${++seq}`;
  const target: RefundTarget = {
    orderNo: `WX${n}`,
    refundNo: `RF${n}`,
    amountMinor: 300,
    currency: 'CNY',
    orderAmountMinor: 1234,
    transactionId: `42000020250606${n}`,
    reason: 'damaged in transit',
    gatewayRefundId: null,
    createdAt: new Date(),
    ...overrides,
  };
  standin.setTrade(target.orderNo, { state: 'SUCCESS', total: 1234, transactionId: `42000020250606${n}` });
  return target;
}

describe('WeChat Pay client: refund (申请退款)', () => {
  it('is part of the client built from the query settings', () => {
    const client = createWechatpayClient(wechatpayClientOptions(standin.url));
    expect(typeof client.refunds?.refund).toBe('function');
    expect(typeof client.refunds?.queryRefund).toBe('function');
  });

  it('sends a signed POST naming the transaction, out_refund_no, reason and amounts; PROCESSING → pending', async () => {
    const t = paidRefund();
    const answer = await refunds().refund(t, live());
    expect(answer).toEqual({
      state: 'pending',
      gatewayRefundId: `50300${t.refundNo}`,
      gatewayStatus: 'PROCESSING',
      fields: expect.objectContaining({ out_refund_no: t.refundNo, out_trade_no: t.orderNo, status: 'PROCESSING' }),
    });
    const [sent] = standin.requests;
    expect(sent).toMatchObject({ method: 'POST', url: '/v3/refund/domestic/refunds', authorized: true });
    expect(JSON.parse(sent!.body)).toEqual({
      transaction_id: t.transactionId,
      out_refund_no: t.refundNo,
      reason: 'damaged in transit',
      amount: { refund: 300, total: 1234, currency: 'CNY' },
    });
    expect(sent!.headers['content-type']).toBe('application/json');
    expect(sent!.headers['wechatpay-serial']).toBe(KEYS.platformSerial);
    expect(standin.refund(t.refundNo)).toMatchObject({ status: 'PROCESSING', refund: 300, outTradeNo: t.orderNo });
  });

  it('with WECHATPAY_REFUND_NOTIFY_URL, sends it as notify_url (WeChat Pay notifies refund results only there)', async () => {
    const t = paidRefund();
    const notifyUrl = 'https://shop.example/notify/wechatpay';
    expect(await refunds({ refundNotifyUrl: notifyUrl }).refund(t, live())).toMatchObject({ state: 'pending' });
    expect(standin.requests[0]!.authorized).toBe(true);
    expect(JSON.parse(standin.requests[0]!.body)).toMatchObject({ out_refund_no: t.refundNo, notify_url: notifyUrl });
  });

  it('names the order by out_trade_no when no transaction id is known; no reason, no reason field; a long one is cut to 80 characters', async () => {
    const t = paidRefund({ transactionId: null, reason: null });
    expect(await refunds().refund(t, live())).toMatchObject({ state: 'pending' });
    expect(JSON.parse(standin.requests[0]!.body)).toEqual({
      out_trade_no: t.orderNo,
      out_refund_no: t.refundNo,
      amount: { refund: 300, total: 1234, currency: 'CNY' },
    });

    const long = paidRefund({ reason: `  ${'退'.repeat(100)}  ` });
    expect(await refunds().refund(long, live())).toMatchObject({ state: 'pending' });
    expect((JSON.parse(standin.requests[1]!.body) as { reason: string }).reason).toBe('退'.repeat(80));
  });

  it('SUCCESS → succeeded with the refund amount and currency the answer states', async () => {
    standin.setRefundReaction({ status: 'SUCCESS' });
    const t = paidRefund();
    expect(await refunds().refund(t, live())).toEqual({
      state: 'succeeded',
      gatewayRefundId: `50300${t.refundNo}`,
      amountMinor: 300,
      currency: 'CNY',
      fields: expect.objectContaining({ status: 'SUCCESS', success_time: expect.any(String) }),
    });
  });

  it.each([
    ['CLOSED', /^CLOSED: /],
    ['ABNORMAL', /^ABNORMAL: /],
  ] as const)('%s → failed, the reason naming it', async (status, reason) => {
    standin.setRefundReaction({ status });
    const t = paidRefund();
    const answer = await refunds().refund(t, live());
    expect(answer).toMatchObject({ state: 'failed', gatewayRefundId: `50300${t.refundNo}`, reason: expect.stringMatching(reason) });
  });

  it('the amount and currency are reported as WeChat states them, for the ledger to check against ours', async () => {
    const t = paidRefund();
    standin.setRefund(t.refundNo, { status: 'SUCCESS', outTradeNo: t.orderNo, refund: 999, total: 1234, currency: 'USD' });
    expect(await refunds().refund(t, live())).toMatchObject({ state: 'succeeded', amountMinor: 999, currency: 'USD' });
  });

  it('the same out_refund_no again refunds once: WeChat answers the refund it already made', async () => {
    const t = paidRefund();
    const client = refunds();
    expect(await client.refund(t, live())).toMatchObject({ state: 'pending' });
    standin.setRefund(t.refundNo, { ...standin.refund(t.refundNo)!, status: 'SUCCESS' });
    expect(await client.refund(t, live())).toMatchObject({ state: 'succeeded', amountMinor: 300 });
    expect(standin.requests.map((r) => r.body)).toEqual([standin.requests[0]!.body, standin.requests[0]!.body]);
  });

  it('an answer lost after WeChat made the refund is a timeout, never failed; the query then finds it and a resend refunds nothing more', async () => {
    const t = paidRefund({ amountMinor: 1234 });
    standin.setBehaviour('lose-answer');
    const started = Date.now();
    const lost = await failure(refunds({ timeoutMs: 300 }).refund(t, live()));
    expect(lost.kind).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(1500);
    expect(standin.refund(t.refundNo)).toMatchObject({ status: 'PROCESSING', refund: 1234 });
    standin.setBehaviour('normal');
    expect(await refunds().queryRefund(t, live())).toMatchObject({ state: 'pending', gatewayStatus: 'PROCESSING' });
    expect(await refunds().refund(t, live())).toMatchObject({ state: 'pending', gatewayRefundId: `50300${t.refundNo}` });
  });

  it.each([
    [403, 'NOT_ENOUGH', '商户可用退款余额不足'],
    [403, 'USER_ACCOUNT_ABNORMAL', '退款请求失败'],
    [403, 'NO_AUTH', '没有退款权限'],
    [400, 'INVALID_REQUEST', '不符合业务规则'],
    [400, 'PARAM_ERROR', '参数错误'],
    [400, 'MCH_NOT_EXISTS', 'MCHID不存在'],
  ])('a signed %i %s refusal → failed with the code and message, no refund id', async (status, code, message) => {
    standin.setRefundReaction({ refuse: { status, code, message } });
    const t = paidRefund();
    expect(await refunds().refund(t, live())).toEqual({ state: 'failed', gatewayRefundId: null, reason: `${code}: ${message}`, fields: { code, message } });
  });

  it('refusals WeChat gives on its own: more than the refundable rest, an order it does not know, a wrong order total', async () => {
    const client = refunds();
    const t = paidRefund({ amountMinor: 1000 });
    expect(await client.refund(t, live())).toMatchObject({ state: 'pending' });
    const more = await client.refund({ ...t, refundNo: `${t.refundNo}B`, amountMinor: 235 }, live());
    expect(more).toMatchObject({ state: 'failed', reason: 'INVALID_REQUEST: 申请退款金额超过订单可退金额' });
    const unknown = await client.refund({ ...t, refundNo: `${t.refundNo}C`, transactionId: '4200000000000000000000000000' }, live());
    expect(unknown).toMatchObject({ state: 'failed', reason: expect.stringMatching(/^RESOURCE_NOT_EXISTS/) });
    const total = await client.refund({ ...t, refundNo: `${t.refundNo}D`, amountMinor: 1, orderAmountMinor: 1000 }, live());
    expect(total).toMatchObject({ state: 'failed', reason: expect.stringMatching(/^INVALID_REQUEST/) });
  });

  it.each(['unsigned', 'mis-signed', 'stale'] as const)('a %s refusal is not believed: bad_signature, the outcome stays unknown', async (behaviour) => {
    standin.setRefundReaction({ refuse: { status: 403, code: 'NOT_ENOUGH', message: '余额不足' } });
    standin.setBehaviour(behaviour);
    const error = await failure(refunds().refund(paidRefund(), live()));
    expect(error.kind).toBe('bad_signature');
    expect(error.excerpt).toContain('NOT_ENOUGH');
  });

  it.each([
    ['429 FREQUENCY_LIMITED', { status: 429, code: 'FREQUENCY_LIMITED', message: '频率限制' }],
    ['500 SYSTEM_ERROR', { status: 500, code: 'SYSTEM_ERROR', message: '系统超时' }],
    ['a code WeChat does not document for refunds', { status: 403, code: 'SOMETHING_NEW', message: '?' }],
    ['a refusal code with 429', { status: 429, code: 'INVALID_REQUEST', message: '?' }],
  ])('%s → http_status: unknown, never failed', async (_name, refuse) => {
    standin.setRefundReaction({ refuse });
    const error = await failure(refunds().refund(paidRefund(), live()));
    expect(error.kind).toBe('http_status');
    expect(error.message).toContain(String(refuse.status));
    expect(error.excerpt).toContain(refuse.code);
  });

  it.each(['http-500', 'http-429'] as const)('%s for any request → http_status', async (behaviour) => {
    standin.setBehaviour(behaviour);
    expect((await failure(refunds().refund(paidRefund(), live()))).kind).toBe('http_status');
  });

  it('a request WeChat cannot verify (401 SIGN_ERROR) → http_status, nothing refunded', async () => {
    const t = paidRefund();
    const error = await failure(refunds({ merchantPrivateKey: KEYS.rogue.privateKey }).refund(t, live()));
    expect(error.kind).toBe('http_status');
    expect(error.message).toContain('401 SIGN_ERROR');
    expect(standin.requests[0]).toMatchObject({ authorized: false });
    expect(standin.refund(t.refundNo)).toBeUndefined();
  });

  it.each(['mis-signed', 'unsigned', 'stale', 'unknown-serial'] as const)('a %s success answer → bad_signature', async (behaviour) => {
    standin.setRefundReaction({ status: 'SUCCESS' });
    standin.setBehaviour(behaviour);
    const t = paidRefund();
    const error = await failure(refunds().refund(t, live()));
    expect(error.kind).toBe('bad_signature');
    expect(error.excerpt).toContain(t.refundNo);
  });

  it('no answer → timeout; an aborted signal → network; garbage → malformed', async () => {
    standin.setBehaviour('hang');
    expect((await failure(refunds({ timeoutMs: 200 }).refund(paidRefund(), live()))).kind).toBe('timeout');
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    expect((await failure(refunds({ timeoutMs: 10_000 }).refund(paidRefund(), controller.signal))).kind).toBe('network');
    standin.setBehaviour('garbage');
    expect((await failure(refunds().refund(paidRefund(), live()))).kind).toBe('malformed');
  });

  it.each([
    ['another out_refund_no', (t: RefundTarget) => ({ answerAs: `${t.refundNo}X` })],
    ['another out_trade_no', () => ({ outTradeNo: 'SOMEONE_ELSE' })],
    ['a status WeChat does not document', () => ({ status: 'REFUNDING' as RefundStatus })],
    ['a fractional refund amount', () => ({ refund: 2.5 })],
  ])('a signed answer about %s → malformed', async (_name, change) => {
    const t = paidRefund();
    standin.setRefund(t.refundNo, { status: 'SUCCESS', outTradeNo: t.orderNo, refund: 300, total: 1234, ...change(t) });
    const client = refunds();
    expect((await failure(client.refund(t, live()))).kind).toBe('malformed');
    expect((await failure(client.queryRefund(t, live()))).kind).toBe('malformed');
  });
});

describe('WeChat Pay client: queryRefund (查询单笔退款)', () => {
  it.each([
    ['SUCCESS', { state: 'succeeded', amountMinor: 300, currency: 'CNY' }],
    ['PROCESSING', { state: 'pending', gatewayStatus: 'PROCESSING' }],
    ['CLOSED', { state: 'failed', reason: expect.stringMatching(/^CLOSED: /) }],
    ['ABNORMAL', { state: 'failed', reason: expect.stringMatching(/^ABNORMAL: /) }],
  ] as const)('%s, from a signed GET by out_refund_no', async (status, expected) => {
    const t = paidRefund();
    standin.setRefund(t.refundNo, { status, outTradeNo: t.orderNo, refund: 300, total: 1234, refundId: '50300000012025060600001' });
    const answer = await refunds().queryRefund(t, live());
    expect(answer).toMatchObject({ ...expected, gatewayRefundId: '50300000012025060600001', fields: expect.objectContaining({ status }) });
    expect(standin.requests[0]).toMatchObject({ method: 'GET', url: `/v3/refund/domestic/refunds/${t.refundNo}`, body: '', authorized: true });
  });

  it('a refund WeChat never received (404 RESOURCE_NOT_EXISTS, signed) → not_found', async () => {
    const t = paidRefund();
    expect(await refunds().queryRefund(t, live())).toEqual({
      state: 'not_found',
      gatewayStatus: 'RESOURCE_NOT_EXISTS',
      fields: { code: 'RESOURCE_NOT_EXISTS', message: '退款单不存在' },
    });
  });

  it.each(['unsigned', 'mis-signed', 'unknown-serial'] as const)('a %s not-found or success answer → bad_signature', async (behaviour) => {
    const t = paidRefund();
    standin.setBehaviour(behaviour);
    expect((await failure(refunds().queryRefund(t, live()))).kind).toBe('bad_signature');
    standin.setRefund(t.refundNo, { status: 'SUCCESS', outTradeNo: t.orderNo, refund: 300, total: 1234 });
    expect((await failure(refunds().queryRefund(t, live()))).kind).toBe('bad_signature');
  });

  it('500 and 429 → http_status; no answer → timeout', async () => {
    for (const behaviour of ['http-500', 'http-429'] as const) {
      standin.setBehaviour(behaviour);
      expect((await failure(refunds().queryRefund(paidRefund(), live()))).kind).toBe('http_status');
    }
    standin.setBehaviour('hang');
    expect((await failure(refunds({ timeoutMs: 200 }).queryRefund(paidRefund(), live()))).kind).toBe('timeout');
  });
});

describe('the stand-in checks refund requests like the official SDK signs them (wechatpay-node-v3)', () => {
  /** The SDK's requests, sent to the stand-in instead of api.mch.weixin.qq.com, byte for byte as it signed them. */
  const toStandin: IPayRequest = {
    async post(url, params, headers) {
      const res = await request(url.replace('https://api.mch.weixin.qq.com', standin.url), { method: 'POST', headers, body: JSON.stringify(params) });
      return { status: res.statusCode, data: await res.body.json() };
    },
    async get(url, headers) {
      const res = await request(url.replace('https://api.mch.weixin.qq.com', standin.url), { headers });
      return { status: res.statusCode, data: await res.body.json() };
    },
    upload: () => Promise.reject(new Error('not used')),
  };
  const sdk = new Pay({
    appid: 'wxd678efh567hg6787',
    mchid: KEYS.mchId,
    publicKey: Buffer.from('unused'),
    privateKey: Buffer.from(KEYS.merchantPrivateKeyPem),
    serial_no: KEYS.merchantSerial,
  });
  sdk.createHttp(toStandin);

  it('accepts the SDK’s signed 申请退款 and 查询单笔退款, the same request our client sends, and treats both alike', async () => {
    const ours = paidRefund();
    expect(await refunds().refund(ours, live())).toMatchObject({ state: 'pending' });
    const theirs = paidRefund();
    // The body our client sent, for the SDK's order: the stand-in must answer it as it answered ours.
    const params = {
      ...(JSON.parse(standin.requests[0]!.body) as Record<string, unknown>),
      transaction_id: theirs.transactionId,
      out_refund_no: theirs.refundNo,
    };
    const made = await sdk.refunds(params as unknown as Parameters<typeof sdk.refunds>[0]);
    expect(made).toMatchObject({ status: 200, data: { out_refund_no: theirs.refundNo, status: 'PROCESSING', amount: { refund: 300 } } });
    const asked = await sdk.find_refunds(theirs.refundNo);
    expect(asked).toMatchObject({ status: 200, data: { out_refund_no: theirs.refundNo } });
    expect(standin.requests.map((r) => [r.method, r.authorized])).toEqual([
      ['POST', true],
      ['POST', true],
      ['GET', true],
    ]);
    // And a request the SDK signed, changed afterwards, is refused.
    const tampered = await toStandin.post(
      'https://api.mch.weixin.qq.com/v3/refund/domestic/refunds',
      { ...params, out_refund_no: `${theirs.refundNo}Z` },
      { Authorization: standin.requests[1]!.headers.authorization, 'Content-Type': 'application/json' },
    );
    expect(tampered).toMatchObject({ status: 401, data: { code: 'SIGN_ERROR' } });
  });
});
