import request from 'supertest';
import { expect } from 'vitest';
import { TEST_GATEWAY_SECRET, type TestContext } from './context.ts';
import { nowSeconds, signed } from './gateway-signer.ts';

/** Helpers shared by the HTML page tests (callback result pages, sandbox). */

let counter = 0;
/** Unique per run and per call, also across the two engines' databases. */
export const uid = (prefix: string) => `${prefix}${Date.now().toString(36)}${(++counter).toString(36)}`;

/** Inverse of EJS's `<%= %>` escaping (& < > " '). */
export function unescapeHtml(text: string): string {
  return text.replace(/&(lt|gt|quot|#34|#39|amp);/g, (_m, e: string) => ({ lt: '<', gt: '>', quot: '"', '#34': '"', '#39': "'", amp: '&' })[e]!);
}

/** The text of a `data-field="<name>"` cell of the order table, or undefined. */
export function field(html: string, name: string): string | undefined {
  const match = new RegExp(`data-field="${name}">([^<]*)<`).exec(html);
  return match ? unescapeHtml(match[1]!) : undefined;
}

/** The `data-result` kind of a result page: success, failure, pending, closed or rejected. */
export const resultKind = (html: string) => /data-result="([a-z]+)"/.exec(html)?.[1];

/** The unescaped value of an attribute of the element with this id. */
export function attrOf(html: string, id: string, attr: string): string | undefined {
  const tag = new RegExp(`<[^>]*\\bid="${id}"[^>]*>`).exec(html)?.[0];
  const value = tag && new RegExp(`\\b${attr}="([^"]*)"`).exec(tag)?.[1];
  return value === undefined ? undefined : unescapeHtml(value);
}

export async function createOrder(ctx: TestContext, fields: Record<string, unknown> = {}): Promise<string> {
  const order_no = (fields.order_no as string | undefined) ?? uid('PG');
  const res = await ctx.api('post', '/api/orders').send({ amount: '12.34', currency: 'CNY', ...fields, order_no });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return order_no;
}

/** Gateway parameters for an order, signed by the independent signer with TEST_GATEWAY_SECRET. */
export function gatewayParams(orderNo: string, extra: Record<string, string> = {}, signType: 'MD5' | 'HMAC-SHA256' = 'MD5') {
  return signed(
    { order_no: orderNo, transaction_id: uid('TX'), amount: '12.34', currency: 'CNY', status: 'success', timestamp: nowSeconds(), ...extra },
    TEST_GATEWAY_SECRET,
    signType,
  );
}

export const query = (params: Record<string, string>) => new URLSearchParams(params).toString();

/** The shopper's browser arriving at a callback path, by GET (query) or POST (form). */
export function visit(ctx: TestContext, method: 'GET' | 'POST', path: string, params: Record<string, string> | string) {
  const text = typeof params === 'string' ? params : query(params);
  return method === 'GET' ? request(ctx.app).get(`${path}?${text}`) : request(ctx.app).post(path).type('form').send(text);
}

export const orderRow = (ctx: TestContext, orderNo: string) =>
  ctx.db.kysely.selectFrom('orders').selectAll().where('order_no', '=', orderNo).executeTakeFirstOrThrow();

export const paymentLogs = (ctx: TestContext, orderNo: string) =>
  ctx.db.kysely.selectFrom('payment_logs').selectAll().where('order_no', '=', orderNo).orderBy('id').execute();

export const outboxRows = (ctx: TestContext, orderNo: string) =>
  ctx.db.kysely.selectFrom('notifications').selectAll().where('order_no', '=', orderNo).orderBy('seq').execute();

/** Asserts an HTML response and returns its body. */
export function html(res: request.Response, status: number): string {
  expect(res.status, res.text.slice(0, 500)).toBe(status);
  expect(res.headers['content-type']).toMatch(/^text\/html/);
  return res.text;
}

/** Asserts the order is exactly as created: pending, untouched, no outbox event. */
export async function expectUnchanged(ctx: TestContext, orderNo: string): Promise<void> {
  const order = await orderRow(ctx, orderNo);
  expect(order).toMatchObject({ status: 'pending', transaction_id: null, paid_at: null });
  expect(Number(order.seq)).toBe(0);
  expect(await outboxRows(ctx, orderNo)).toHaveLength(0);
}
