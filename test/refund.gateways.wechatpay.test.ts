import { randomBytes, type KeyObject } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import request from 'supertest';
import { request as httpRequest } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ENGINES } from './helpers/engines.ts';
import {
  expectFailedAndReleased,
  expectFullyRefundedOnce,
  expectLeftPending,
  expectSettledAfterUnknown,
  startRefundWorld,
  type RefundWorld,
} from './helpers/refund-gateways.ts';
import { wechatpayDriver, type GatewayDriver } from './helpers/reconcile.ts';
import {
  startWechatpayStandin,
  WECHATPAY_STANDIN_KEYS as KEYS,
  wechatpayStandinEnv,
  type RefundStatus,
  type StandinBehaviour,
  type WechatpayStandin,
} from './helpers/wechatpay-standin.ts';
import { sealResource, signNotification } from './helpers/wechatpay-notification.ts';

/*
 * Refunds end to end at WeChat Pay: an order paid through /notify/wechatpay, refunded through the API. The app talks
 * to the API v3 stand-in (it verifies every request's merchant signature and signs its answers with the platform key)
 * through a pass-through relay, which lets a test deliver WeChat's refund notification before the refund's own answer.
 * Notifications are sealed (AES-256-GCM, APIv3 key) and signed with the platform key here, as WeChat documents them.
 */

const REFUNDS_PATH = '/v3/refund/domestic/refunds';
type BodyOf = { transaction_id?: string; out_refund_no: string; amount: { refund: number; total: number; currency: string } };

/** Forwards everything to the stand-in unchanged; `beforeRefund` runs once, before the next refund request is forwarded. */
async function startRelay(target: string) {
  let beforeRefund: ((body: BodyOf) => Promise<void>) | null = null;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const body = Buffer.concat(chunks);
        const hook = req.method === 'POST' && req.url === REFUNDS_PATH ? beforeRefund : null;
        if (hook) {
          beforeRefund = null;
          await hook(JSON.parse(body.toString('utf8')) as BodyOf);
        }
        const { host: _host, connection: _connection, 'content-length': _length, ...headers } = req.headers;
        const abort = new AbortController();
        res.on('close', () => abort.abort());
        const answer = await httpRequest(`${target}${req.url}`, {
          method: req.method as 'GET' | 'POST',
          headers: headers as Record<string, string>,
          body: body.length > 0 ? body : undefined,
          signal: abort.signal,
        });
        const text = Buffer.from(await answer.body.arrayBuffer());
        const { 'transfer-encoding': _te, connection: _c, 'keep-alive': _k, 'content-length': _l, ...out } = answer.headers as IncomingHttpHeaders;
        res.writeHead(answer.statusCode, out as Record<string, string>).end(text);
      })().catch(() => res.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    beforeNextRefund: (hook: (body: BodyOf) => Promise<void>) => void (beforeRefund = hook),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe.each(ENGINES)('refunds at WeChat Pay on %s', (engine) => {
  let wechatpay: WechatpayStandin;
  let relay: Awaited<ReturnType<typeof startRelay>>;
  let g: GatewayDriver;
  let w: RefundWorld;
  const apiV3Key = wechatpayStandinEnv({ url: '' }).WECHATPAY_APIV3_KEY!;

  beforeAll(async () => {
    wechatpay = await startWechatpayStandin();
    relay = await startRelay(wechatpay.url);
    g = wechatpayDriver(wechatpay);
    w = await startRefundWorld(engine, { ...wechatpayStandinEnv(wechatpay), WECHATPAY_API_BASE: relay.url });
  });
  afterAll(async () => {
    await w?.close();
    await relay?.close();
    await wechatpay?.close();
  });
  beforeEach(() => {
    w.clock.reset();
    wechatpay.setBehaviour('normal');
    wechatpay.setRefundReaction({ status: 'PROCESSING' });
  });

  const refundRequests = (refundNo: string) =>
    wechatpay.requests.filter((r) => r.method === 'POST' && r.url === REFUNDS_PATH && (JSON.parse(r.body) as BodyOf).out_refund_no === refundNo);
  const refundQueries = (refundNo: string) => wechatpay.requests.filter((r) => r.method === 'GET' && r.url === `${REFUNDS_PATH}/${refundNo}`);

  /** WeChat's 退款结果通知 about one refund, sealed and signed (with `key`, the platform's by default) at the app's now. */
  function notification(
    r: { orderNo: string; refundNo: string; txn: string; refund: number; total: number },
    o: { status?: RefundStatus; id?: string; key?: KeyObject } = {},
  ) {
    const status = o.status ?? 'SUCCESS';
    const resource = {
      mchid: KEYS.mchId,
      out_trade_no: r.orderNo,
      transaction_id: r.txn,
      out_refund_no: r.refundNo,
      refund_id: `50300${r.refundNo}`,
      refund_status: status,
      ...(status === 'SUCCESS' ? { success_time: '2025-06-06T16:05:00+08:00' } : {}),
      user_received_account: '支付用户零钱',
      amount: { total: r.total, refund: r.refund, payer_total: r.total, payer_refund: r.refund },
    };
    const body = JSON.stringify({
      id: o.id ?? `EV-${randomBytes(8).toString('hex')}`,
      create_time: '2025-06-06T16:05:00+08:00',
      resource_type: 'encrypt-resource',
      event_type: `REFUND.${status}`,
      summary: '退款状态变更',
      resource: sealResource(JSON.stringify(resource), { apiV3Key, aad: 'refund' }),
    });
    const n = signNotification(body, { key: o.key ?? KEYS.platformPrivateKey, serial: KEYS.platformSerial, at: w.clock.now() });
    return request(w.ctx.app).post('/notify/wechatpay').set(n.headers).set('Content-Type', 'application/json').send(n.body);
  }

  /** The notification WeChat sends once the stand-in's refund `refundNo` has `status` (the stand-in is told so too). */
  function settleThere(orderNo: string, refundNo: string, status: RefundStatus, o: { id?: string; key?: KeyObject } = {}) {
    const held = wechatpay.refund(refundNo)!;
    wechatpay.setRefund(refundNo, { ...held, status });
    return notification({ orderNo, refundNo, txn: held.transactionId!, refund: held.refund, total: held.total }, { status, ...o });
  }

  it('full refund: SUCCESS in the answer settles it; one signed request with our out_refund_no and the amounts; refunded, one event', async () => {
    const { no, txn } = await w.paidOrder(g);
    wechatpay.setRefundReaction({ status: 'SUCCESS' });
    const res = await w.refund(no, { amount: '12.34', reason: 'damaged in transit' });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const refundNo = res.body.data.refund_no as string;
    expect(res.body.data).toMatchObject({ order_no: no, amount: '12.34', currency: 'CNY', status: 'succeeded', gateway_refund_id: `50300${refundNo}` });

    const sent = refundRequests(refundNo);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.authorized).toBe(true);
    expect(JSON.parse(sent[0]!.body)).toEqual({
      transaction_id: txn,
      out_refund_no: refundNo,
      reason: 'damaged in transit',
      amount: { refund: 1234, total: 1234, currency: 'CNY' },
    });
    expect(wechatpay.refund(refundNo)).toMatchObject({ status: 'SUCCESS', refund: 1234, outTradeNo: no });
    await expectFullyRefundedOnce(w, no, refundNo);
    expect(await w.timeline(no)).toEqual([['request', 'refund', 'refund_succeeded']]);
    expect(refundQueries(refundNo)).toEqual([]);
  });

  it('partials answered PROCESSING, each settled by its REFUND.SUCCESS notification; more than the rest is refund_exceeds_paid', async () => {
    const { no } = await w.paidOrder(g);
    for (const [i, amount] of ['5.00', '4.00'].entries()) {
      const res = await w.refund(no, { amount, refund_no: `P${i}-${no}` });
      expect([res.status, res.body.data?.status]).toEqual([201, 'pending']);
    }
    expect(await w.rows.order(no)).toMatchObject({ status: 'paid', refund_reserved_minor: 900, refunded_minor: 0, seq: 1 });
    const over = await w.refund(no, { amount: '3.35', refund_no: `PX-${no}` });
    expect([over.status, over.body.code]).toEqual([409, 'refund_exceeds_paid']);
    expect(refundRequests(`PX-${no}`)).toEqual([]);
    expect((await w.refund(no, { amount: '3.34', refund_no: `P2-${no}` })).body.data.status).toBe('pending');

    for (const i of [1, 0, 2]) expect((await settleThere(no, `P${i}-${no}`, 'SUCCESS')).status).toBe(204);
    expect(await w.rows.order(no)).toMatchObject({ status: 'refunded', refunded_minor: 1234, refund_reserved_minor: 0, seq: 4 });
    expect((await w.events(no)).map((e) => [e.type, e.seq, e.body.refund_no ?? null, e.body.refunded_amount ?? null])).toEqual([
      ['order.paid', 1, null, null],
      ['refund.succeeded', 2, `P1-${no}`, '4.00'],
      ['refund.succeeded', 3, `P0-${no}`, '9.00'],
      ['refund.succeeded', 4, `P2-${no}`, '12.34'],
    ]);
    for (const i of [0, 1, 2]) {
      expect(refundRequests(`P${i}-${no}`).map((r) => r.authorized)).toEqual([true]);
      expect(await w.refundRow(`P${i}-${no}`)).toMatchObject({ status: 'succeeded', gateway_refund_id: `50300P${i}-${no}` });
    }
    expect(await w.timeline(no)).toEqual(Array(3).fill(['request', 'refund', 'refund_pending']));
    expect(await w.refundLogs(no)).toEqual(Array(3).fill(['refund_succeeded', 'applied', 0]));
  });

  it('a refusal (403 NOT_ENOUGH) fails the refund, releases the reservation and sends refund.failed', async () => {
    const { no } = await w.paidOrder(g);
    wechatpay.setRefundReaction({ refuse: { status: 403, code: 'NOT_ENOUGH', message: '基本账户余额不足' } });
    const res = await w.refund(no, { amount: '12.34', refund_no: `F-${no}` });
    expect([res.status, res.body.data.status, res.body.data.failure_reason]).toEqual([201, 'failed', 'NOT_ENOUGH: 基本账户余额不足']);
    await expectFailedAndReleased(w, no, `F-${no}`, /^NOT_ENOUGH/);
    expect(await w.timeline(no)).toEqual([['request', 'refund', 'refund_failed']]);
    wechatpay.setRefundReaction({ status: 'SUCCESS' });
    expect((await w.refund(no, { amount: '12.34', refund_no: `F2-${no}` })).body.data.status).toBe('succeeded');
  });

  it.each<[string, StandinBehaviour, boolean]>([
    ['SYSTEM_ERROR (500) after the refund was made', 'http-500', true],
    ['the answer lost (timeout) after the refund was made', 'lose-answer', true],
    ['no answer (timeout) and the refund never made', 'hang', false],
  ])('%s: stays pending, never failed; the loop settles it by one refund query', async (_name, behaviour, madeThere) => {
    const { no } = await w.paidOrder(g);
    const refundNo = `U-${no}`;
    wechatpay.setRefundReaction({ status: 'SUCCESS' });
    wechatpay.setBehaviour(behaviour);
    const res = await w.refund(no, { amount: '12.34', refund_no: refundNo });
    wechatpay.setBehaviour('normal');
    expect([res.status, res.body.data.status]).toEqual([201, 'pending']);
    expect(wechatpay.refund(refundNo) !== undefined).toBe(madeThere);
    await expectLeftPending(w, no);

    await w.checkAfter();
    expect(refundQueries(refundNo).map((r) => r.authorized)).toEqual([true]);
    // Never made: RESOURCE_NOT_EXISTS, so the same out_refund_no is sent again; made: settled by the query alone.
    expect(refundRequests(refundNo)).toHaveLength(madeThere ? 1 : 2);
    await expectSettledAfterUnknown(w, no, refundNo, madeThere);
    await w.checkAfter(60_000);
    expect(refundQueries(refundNo)).toHaveLength(1);
  });

  it.each<RefundStatus>(['PROCESSING', 'SUCCESS'])(
    'REFUND.SUCCESS delivered before the refund request is answered settles it; the later %s answer changes nothing',
    async (answered) => {
      const { no, txn } = await w.paidOrder(g);
      const refundNo = `E-${no}`;
      wechatpay.setRefundReaction({ status: answered });
      let early: request.Response | undefined;
      relay.beforeNextRefund(async (body) => {
        early = await notification({ orderNo: no, refundNo: body.out_refund_no, txn, refund: body.amount.refund, total: body.amount.total });
      });
      const res = await w.refund(no, { amount: '12.34', refund_no: refundNo });
      expect(early?.status).toBe(204);
      expect([res.status, res.body.data.status]).toEqual([201, 'succeeded']);
      expect(wechatpay.refund(refundNo)).toMatchObject({ status: answered });
      await expectFullyRefundedOnce(w, no, refundNo);
      // A SUCCESS answer to a refund the notification settled is recorded as already settled (nothing applied twice).
      expect(await w.timeline(no)).toEqual([['request', 'refund', answered === 'SUCCESS' ? 'refund_already' : 'refund_pending']]);
      expect(await w.refundLogs(no)).toEqual([['refund_succeeded', 'applied', 0]]);
      await w.checkAfter();
      expect(refundQueries(refundNo)).toEqual([]);
    },
  );

  it('a forged notification is refused and changes nothing; the genuine one settles; its repeat (same id) is acknowledged, one event', async () => {
    const { no } = await w.paidOrder(g);
    const refundNo = `D-${no}`;
    expect((await w.refund(no, { amount: '12.34', refund_no: refundNo })).body.data.status).toBe('pending');

    const forged = await settleThere(no, refundNo, 'SUCCESS', { key: KEYS.rogue.privateKey });
    expect(forged.status).toBe(401);
    expect(forged.body).toMatchObject({ code: 'FAIL' });
    expect(await w.rows.order(no)).toMatchObject({ status: 'paid', refunded_minor: 0, refund_reserved_minor: 1234, seq: 1 });
    expect(await w.refundRow(refundNo)).toMatchObject({ status: 'pending' });
    expect((await w.events(no)).map((e) => e.type)).toEqual(['order.paid']);

    const id = `EV-${randomBytes(8).toString('hex')}`;
    expect((await settleThere(no, refundNo, 'SUCCESS', { id })).status).toBe(204);
    w.clock.advance(60_000); // WeChat delivers it again later, signed anew
    expect((await settleThere(no, refundNo, 'SUCCESS', { id })).status).toBe(204);
    w.clock.reset();
    await expectFullyRefundedOnce(w, no, refundNo);
    expect(await w.refundLogs(no)).toEqual([
      ['refund_succeeded', 'applied', 0],
      ['refund_succeeded', 'duplicate', 0],
    ]);
  });

  it('REFUND.ABNORMAL fails the refund, releases the reservation and sends refund.failed', async () => {
    const { no } = await w.paidOrder(g);
    const refundNo = `A-${no}`;
    expect((await w.refund(no, { amount: '12.34', refund_no: refundNo })).body.data.status).toBe('pending');
    expect((await settleThere(no, refundNo, 'ABNORMAL')).status).toBe(204);
    await expectFailedAndReleased(w, no, refundNo, /^ABNORMAL: /);
    expect(await w.refundLogs(no)).toEqual([['refund_failed', 'applied', 0]]);
    expect(await w.timeline(no)).toEqual([['request', 'refund', 'refund_pending']]);
    await w.checkAfter();
    expect(refundQueries(refundNo)).toEqual([]);
  });
});
