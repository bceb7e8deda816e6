import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import request from 'supertest';
import { createGenericGateway } from '../src/callbacks/gateways/generic.ts';
import { ENGINES } from './helpers/engines.ts';
import { createTestContext, TEST_GATEWAY_SECRET, type TestContext } from './helpers/context.ts';
import { gatewaySign, nowSeconds } from './helpers/gateway-signer.ts';

/**
 * A5's signing string joins `k=v` with `&`: a value holding `&name=` could re-split one gateway-signed set into
 * another under the same sign. Each case first proves the two sets share the sign, then that the re-split set
 * is refused as malformed (400 validation_failed) with nothing changed.
 */
describe.each(ENGINES)('re-split signed parameter sets on %s', (engine) => {
  let ctx: TestContext;
  let seq = 0;
  beforeAll(async () => {
    ctx = await createTestContext(engine);
  });
  afterAll(() => ctx.close());

  async function order(amount = '10.00'): Promise<string> {
    const order_no = `RS${++seq}`;
    expect((await ctx.api('post', '/api/orders').send({ order_no, amount, currency: 'CNY', notify_url: 'https://merchant.example/n' })).status).toBe(201);
    return order_no;
  }
  const orderRow = (no: string) => ctx.db.kysely.selectFrom('orders').selectAll().where('order_no', '=', no).executeTakeFirstOrThrow();
  const logs = (no: string) => ctx.db.kysely.selectFrom('payment_logs').selectAll().where('order_no', '=', no).orderBy('id').execute();
  const events = (no: string) => ctx.db.kysely.selectFrom('notifications').selectAll().where('order_no', '=', no).execute();
  const notify = (body: Record<string, string>) => request(ctx.app).post('/notify').type('form').send(body);

  it('a currency moved into another value under the same sign is refused, not applied as CNY', async () => {
    const no = await order();
    const genuine = { order_no: no, transaction_id: `TX-${no}`, amount: '10.00', currency: 'USD', status: 'success', body: 'Foo' };
    const sign = gatewaySign(genuine, TEST_GATEWAY_SECRET);
    const resplit = { order_no: no, transaction_id: `TX-${no}`, amount: '10.00', status: 'success', body: 'Foo&currency=USD' };
    expect(gatewaySign(resplit, TEST_GATEWAY_SECRET)).toBe(sign); // the attack's premise

    const first = await notify({ ...genuine, sign });
    expect(first.status).toBe(409);
    expect(first.body.code).toBe('amount_mismatch');
    const second = await notify({ ...resplit, sign });
    expect(second.status).toBe(400);
    expect(second.body).toMatchObject({ success: false, code: 'validation_failed' });
    expect(second.body.message).toMatch(/body must not contain "&"/);
    expect((await orderRow(no)).status).toBe('pending');
    expect((await logs(no)).map((l) => l.verdict)).toEqual(['amount_mismatch', 'malformed']);
    expect(await events(no)).toEqual([]);
  });

  it('a used nonce and an expired timestamp hidden in other values do not get past replay protection', async () => {
    const no = await order();
    const old = String(Math.floor(Date.now() / 1000) - 3600);
    // Sorted: amount, body, nonce, order_no, status, subject, timestamp, transaction_id.
    const genuine = { order_no: no, transaction_id: `TX-${no}`, amount: '10.00', status: 'success', body: 'x', nonce: `N-${no}`, subject: 'y', timestamp: old };
    const sign = gatewaySign(genuine, TEST_GATEWAY_SECRET);
    const resplit = { order_no: no, transaction_id: `TX-${no}`, amount: '10.00', status: 'success', body: `x&nonce=N-${no}`, subject: `y&timestamp=${old}` };
    expect(gatewaySign(resplit, TEST_GATEWAY_SECRET)).toBe(sign);

    expect((await notify({ ...genuine, sign })).body.code).toBe('replayed');
    const res = await notify({ ...resplit, sign });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('validation_failed');
    expect((await orderRow(no)).status).toBe('pending');
  });

  it('GET /callback refuses the re-split set too (failure page, 400, nothing changed)', async () => {
    const no = await order();
    const genuine = { order_no: no, transaction_id: `TX-${no}`, amount: '10.00', currency: 'USD', status: 'success', body: 'Foo' };
    const sign = gatewaySign(genuine, TEST_GATEWAY_SECRET);
    const query = new URLSearchParams({ order_no: no, transaction_id: `TX-${no}`, amount: '10.00', status: 'success', body: 'Foo&currency=USD', sign });
    const res = await request(ctx.app).get(`/callback?${query.toString()}`);
    expect(res.status).toBe(400);
    expect((await orderRow(no)).status).toBe('pending');
    expect((await logs(no)).map((l) => [l.kind, l.verdict])).toEqual([['return', 'malformed']]);
  });

  it('values with & or = that cannot swallow a pair stay valid (real product names)', async () => {
    const no = await order();
    const params = {
      order_no: no,
      transaction_id: `TX-${no}`,
      amount: '10.00',
      status: 'success',
      timestamp: nowSeconds(),
      body: 'Tom & Jerry',
      attach: 'a=b',
      memo: 'x&&=y & =z &中=1',
    };
    const res = await notify({ ...params, sign: gatewaySign(params, TEST_GATEWAY_SECRET) });
    expect(res.status).toBe(200);
    expect((await orderRow(no)).status).toBe('paid');
  });

  it('a transaction_id that would re-split the merchant notification is refused before it is stored', async () => {
    const no = await order();
    const params = { order_no: no, transaction_id: 'TX&amount=0.01', amount: '10.00', status: 'success' };
    const res = await notify({ ...params, sign: gatewaySign(params, TEST_GATEWAY_SECRET) });
    expect(res.status).toBe(400);
    expect((await orderRow(no)).status).toBe('pending');
    expect(await events(no)).toEqual([]);
  });
});

describe('the sandbox gateway shares the refusal', () => {
  it('verify() refuses a value holding &name= before the signature decides anything', () => {
    const gateway = createGenericGateway('sandbox', TEST_GATEWAY_SECRET);
    const params = { order_no: 'S1', transaction_id: 'T1', amount: '1.00', status: 'success', subject: 'a&status=failed' };
    const result = gateway.verify({ params: { ...params, sign: gatewaySign(params, TEST_GATEWAY_SECRET) }, headers: {}, now: new Date() });
    expect(result).toMatchObject({ ok: false, rejection: { verdict: 'malformed', code: 'validation_failed' } });
  });
});
