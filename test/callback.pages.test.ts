import { createHash } from 'node:crypto';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestContext, TEST_GATEWAY_SECRET, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';
import { gatewaySign, nowSeconds } from './helpers/gateway-signer.ts';
import {
  attrOf,
  createOrder,
  expectUnchanged,
  field,
  gatewayParams,
  html,
  orderRow,
  outboxRows,
  paymentLogs,
  query,
  resultKind,
  uid,
  visit,
} from './helpers/pages.ts';

/** DESIGN A5 `GET|POST /callback`: the shopper's browser returning with signed gateway parameters. */

const PATHS = ['/callback', '/callback/generic', '/callback.php'] as const;
const METHODS = ['GET', 'POST'] as const;
const SIGN_TYPES = ['MD5', 'HMAC-SHA256'] as const;
const MATRIX = PATHS.flatMap((path) => METHODS.flatMap((method) => SIGN_TYPES.map((signType) => ({ path, method, signType }))));
const NOTIFY_URL = 'https://merchant.example/notify';

/** A7's sign rule, written independently: sorted non-empty params but sign, `k=v&…&key=<secret>`, upper-hex MD5. */
function merchantMd5(params: Record<string, string>, secret: string): string {
  const keys = Object.keys(params)
    .filter((k) => k !== 'sign' && params[k] !== '')
    .sort();
  const text = `${keys.map((k) => `${k}=${params[k]}`).join('&')}&key=${secret}`;
  return createHash('md5').update(text, 'utf8').digest('hex').toUpperCase();
}

describe.each(ENGINES)('/callback result pages on %s', (engine) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(engine);
  });
  afterAll(() => ctx?.close());

  it.each(MATRIX)('$method $path signed with $signType → success page, order paid', async ({ path, method, signType }) => {
    const orderNo = await createOrder(ctx, { notify_url: NOTIFY_URL });
    const params = gatewayParams(orderNo, {}, signType);
    const page = html(await visit(ctx, method, path, params), 200);
    expect(resultKind(page)).toBe('success');
    expect(page).toContain('Payment successful');
    expect(field(page, 'order_no')).toBe(orderNo);
    expect(field(page, 'amount')).toBe('12.34');
    expect(field(page, 'currency')).toBe('CNY');
    expect(field(page, 'status')).toBe('Paid');

    const order = await orderRow(ctx, orderNo);
    expect(order).toMatchObject({ status: 'paid', transaction_id: params.transaction_id });
    expect(order.paid_at).not.toBeNull();
    const logs = await paymentLogs(ctx, orderNo);
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatchObject({ gateway: 'generic', kind: 'return', verdict: 'applied', transaction_id: params.transaction_id, status: 'paid' });
    expect(Number(logs[0]!.amount_minor)).toBe(1234);
    expect(logs[0]!.remote_ip).toMatch(/127\.0\.0\.1|::1/);
    const outbox = await outboxRows(ctx, orderNo);
    expect(outbox.map((n) => n.type)).toEqual(['order.paid']);
  });

  it.each(METHODS)('%s status=failed → failure page (200), order failed', async (method) => {
    const orderNo = await createOrder(ctx, { notify_url: NOTIFY_URL });
    const page = html(await visit(ctx, method, '/callback', gatewayParams(orderNo, { status: 'failed' })), 200);
    expect(resultKind(page)).toBe('failure');
    expect(page).toContain('Payment failed');
    expect(field(page, 'order_no')).toBe(orderNo);
    expect(field(page, 'status')).toBe('Failed');
    expect((await orderRow(ctx, orderNo)).status).toBe('failed');
    expect((await paymentLogs(ctx, orderNo)).map((l) => [l.kind, l.verdict])).toEqual([['return', 'applied']]);
    expect((await outboxRows(ctx, orderNo)).map((n) => n.type)).toEqual(['order.failed']);
  });

  it.each([
    { name: 'without a nonce', nonce: false, second: 'duplicate' },
    { name: 'with a nonce', nonce: true, second: 'replayed' },
  ])('a second visit with the same parameters ($name) shows the success page again and changes nothing', async ({ nonce, second }) => {
    const orderNo = await createOrder(ctx, { notify_url: NOTIFY_URL });
    const params = gatewayParams(orderNo, nonce ? { nonce: uid('N') } : {});
    html(await visit(ctx, 'GET', '/callback', params), 200);
    const before = await orderRow(ctx, orderNo);
    const again = html(await visit(ctx, 'GET', '/callback', params), 200);
    expect(resultKind(again)).toBe('success');
    expect(field(again, 'order_no')).toBe(orderNo);
    expect(again).not.toMatch(/class="alert/);
    expect(await orderRow(ctx, orderNo)).toEqual(before);
    expect(await outboxRows(ctx, orderNo)).toHaveLength(1);
    expect((await paymentLogs(ctx, orderNo)).map((l) => l.verdict)).toEqual(['applied', second]);
  });

  const REJECTIONS: { name: string; verdict: string; build(orderNo: string): string }[] = [
    { name: 'a wrong signature', verdict: 'bad_signature', build: (no) => query({ ...gatewayParams(no), sign: 'A'.repeat(32) }) },
    {
      name: 'a signature made with another key',
      verdict: 'bad_signature',
      build: (no) => {
        const p = gatewayParams(no);
        return query({ ...p, sign: gatewaySign(p, 'not-the-secret') });
      },
    },
    { name: 'a tampered status', verdict: 'bad_signature', build: (no) => query({ ...gatewayParams(no, { status: 'failed' }), status: 'success' }) },
    {
      name: 'a missing sign',
      verdict: 'bad_signature',
      build: (no) => {
        const { sign: _s, ...rest } = gatewayParams(no);
        return query(rest);
      },
    },
    { name: 'an array parameter amount[]=1', verdict: 'malformed', build: (no) => `${query(gatewayParams(no))}&amount[]=1` },
    { name: 'a repeated parameter', verdict: 'malformed', build: (no) => `${query(gatewayParams(no))}&amount=99.00` },
    { name: 'a __proto__ key', verdict: 'malformed', build: (no) => `${query(gatewayParams(no))}&__proto__=x` },
    { name: 'a constructor key', verdict: 'malformed', build: (no) => `${query(gatewayParams(no))}&constructor=x` },
    { name: 'a stale timestamp', verdict: 'replayed', build: (no) => query(gatewayParams(no, { timestamp: String(Number(nowSeconds()) - 3600) })) },
  ];

  describe.each(METHODS)('%s rejections', (method) => {
    it.each(REJECTIONS)('$name → failure page 400, nothing changed, logged $verdict', async ({ build, verdict }) => {
      const orderNo = await createOrder(ctx, { notify_url: NOTIFY_URL, callback_url: 'https://shop.example/return' });
      const page = html(await visit(ctx, method, '/callback', build(orderNo)), 400);
      expect(resultKind(page)).toBe('rejected');
      expect(page).toContain('Payment result could not be verified');
      expect(page).not.toContain('id="return-to-merchant"');
      await expectUnchanged(ctx, orderNo);
      const logs = await paymentLogs(ctx, orderNo);
      expect(logs.map((l) => [l.gateway, l.kind, l.verdict])).toEqual([['generic', 'return', verdict]]);
      expect(logs[0]!.callback_data.length).toBeGreaterThan(0);
      expect(({} as Record<string, unknown>).x).toBeUndefined();
    });
  });

  it('a __proto__ key in a JSON body → 400 page, no prototype pollution', async () => {
    const orderNo = await createOrder(ctx);
    const body = `{"__proto__":{"polluted":"yes"},${JSON.stringify(gatewayParams(orderNo)).slice(1)}`;
    const page = html(await request(ctx.app).post('/callback').type('json').send(body), 400);
    expect(resultKind(page)).toBe('rejected');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    await expectUnchanged(ctx, orderNo);
    expect((await paymentLogs(ctx, orderNo)).map((l) => l.verdict)).toEqual(['malformed']);
  });

  it('an unknown order → 400 page, recorded as unknown_order', async () => {
    const orderNo = uid('NOPE');
    const page = html(await visit(ctx, 'GET', '/callback', gatewayParams(orderNo)), 400);
    expect(resultKind(page)).toBe('rejected');
    const logs = await paymentLogs(ctx, orderNo);
    expect(logs.map((l) => [l.kind, l.verdict, Number(l.flagged)])).toEqual([['return', 'unknown_order', 1]]);
    expect(await ctx.db.kysely.selectFrom('orders').select('id').where('order_no', '=', orderNo).execute()).toHaveLength(0);
  });

  it.each<{ name: string; extra: Record<string, string> }>([
    { name: 'amount', extra: { amount: '12.35' } },
    { name: 'currency', extra: { currency: 'USD' } },
  ])('a different $name → 409 page, nothing changed, logged amount_mismatch', async ({ extra }) => {
    const orderNo = await createOrder(ctx, { notify_url: NOTIFY_URL });
    const page = html(await visit(ctx, 'POST', '/callback', gatewayParams(orderNo, extra)), 409);
    expect(resultKind(page)).toBe('rejected');
    await expectUnchanged(ctx, orderNo);
    expect((await paymentLogs(ctx, orderNo)).map((l) => [l.verdict, Number(l.flagged)])).toEqual([['amount_mismatch', 1]]);
  });

  it.each([
    { status: 'success', page: 'success', orderStatus: 'paid' },
    { status: 'failed', page: 'failure', orderStatus: 'failed' },
  ])('return-to-merchant link on the $page page keeps the merchant query and is signed with NOTIFY_SECRET', async (c) => {
    const orderNo = await createOrder(ctx, { callback_url: 'https://shop.example/return?x=1', amount: '1000', currency: 'JPY' });
    const before = Math.floor(Date.now() / 1000);
    const page = html(await visit(ctx, 'GET', '/callback', gatewayParams(orderNo, { amount: '1000', currency: 'JPY', status: c.status })), 200);
    expect(resultKind(page)).toBe(c.page);
    const href = attrOf(page, 'return-to-merchant', 'href');
    expect(href).toBeDefined();
    const url = new URL(href!);
    expect(`${url.origin}${url.pathname}`).toBe('https://shop.example/return');
    const got = Object.fromEntries(url.searchParams);
    expect(got).toMatchObject({ x: '1', order_no: orderNo, status: c.orderStatus, amount: '1000', currency: 'JPY', sign_type: 'MD5' });
    expect(Number(got.timestamp)).toBeGreaterThanOrEqual(before);
    expect(Number(got.timestamp)).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));
    const { x: _x, ...signedPart } = got;
    expect(Object.keys(signedPart).sort()).toEqual(['amount', 'currency', 'order_no', 'sign', 'sign_type', 'status', 'timestamp']);
    expect(got.sign).toBe(merchantMd5(signedPart, ctx.config.secrets.NOTIFY_SECRET));
    expect(got.sign).not.toBe(merchantMd5(signedPart, TEST_GATEWAY_SECRET));
  });

  it('no return-to-merchant link when the order has no callback_url', async () => {
    const orderNo = await createOrder(ctx);
    const page = html(await visit(ctx, 'GET', '/callback', gatewayParams(orderNo)), 200);
    expect(resultKind(page)).toBe('success');
    expect(page).not.toContain('return-to-merchant');
    expect(page).not.toContain('id="new-order"');
  });

  it('other methods → 405 page with Allow, nothing logged as applied', async () => {
    const orderNo = await createOrder(ctx);
    const res = await request(ctx.app).put(`/callback?${query(gatewayParams(orderNo))}`);
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe('GET, POST');
    await expectUnchanged(ctx, orderNo);
  });
});
