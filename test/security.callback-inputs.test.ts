import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import request from 'supertest';
import { ENGINES } from './helpers/engines.ts';
import { createTestContext, TEST_API_KEY, TEST_GATEWAY_SECRET, type TestContext } from './helpers/context.ts';
import { signed } from './helpers/gateway-signer.ts';

/** Re-encoded and re-placed inputs: only UTF-8 bodies, a POST's parameters from its body only, no empty fields of ours. */
describe.each(ENGINES)('callback and API input encodings on %s', (engine) => {
  let ctx: TestContext;
  let seq = 0;
  beforeAll(async () => {
    ctx = await createTestContext(engine);
  });
  afterAll(() => ctx.close());

  async function order(): Promise<string> {
    const order_no = `IN${++seq}`;
    expect((await ctx.api('post', '/api/orders').send({ order_no, amount: '12.34' })).status).toBe(201);
    return order_no;
  }
  const payment = (no: string, extra: Record<string, string> = {}) =>
    signed({ order_no: no, transaction_id: `TX-${no}`, amount: '12.34', status: 'success', ...extra }, TEST_GATEWAY_SECRET);
  const orderRow = (no: string) => ctx.db.kysely.selectFrom('orders').selectAll().where('order_no', '=', no).executeTakeFirst();
  const logs = (no: string | null) =>
    ctx.db.kysely
      .selectFrom('payment_logs')
      .selectAll()
      .where('order_no', no === null ? 'is' : '=', no)
      .orderBy('id')
      .execute();
  const utf16 = (text: string) => Buffer.from(text, 'utf16le');
  /** supertest would JSON-encode a Buffer under a JSON media type; these bytes must go out exactly as they are. */
  const rawPost = (path: string, contentType: string, body: Buffer, apiKey = true) => {
    const req = request(ctx.app)
      .post(path)
      .set('Content-Type', contentType)
      .serialize((b: unknown) => b as string);
    return (apiKey ? req.set('X-API-Key', TEST_API_KEY) : req).send(body as unknown as string);
  };

  it('UTF-16 JSON creating an order is refused with 415 (its 1e3 would otherwise become 1000.00)', async () => {
    const res = await rawPost('/api/orders', 'application/json; charset=utf-16le', utf16('{"order_no":"U16","amount":1e3}'));
    expect(res.status).toBe(415);
    expect(res.body.success).toBe(false);
    expect(await orderRow('U16')).toBeUndefined();
    for (const charset of ['utf-16', 'UTF-16BE', 'utf-32', 'latin1']) {
      const other = await rawPost('/api/orders', `application/json; charset=${charset}`, Buffer.from('{"amount":"1.00"}'));
      expect(other.status).toBe(415);
    }
    const ok = await rawPost('/api/orders', 'application/json; charset=UTF-8', Buffer.from('{"order_no":"U8","amount":"1.00"}'));
    expect(ok.status).toBe(201);
  });

  it('UTF-16 JSON on /notify and /callback is refused with 415, nothing applied', async () => {
    const no = await order();
    const body = utf16(JSON.stringify(payment(no)));
    for (const path of ['/notify', '/callback']) {
      const res = await rawPost(path, 'application/json; charset=utf-16le', body, false);
      expect(res.status).toBe(415);
    }
    expect((await orderRow(no))!.status).toBe('pending');
  });

  it('POST /notify takes parameters from its body only: a signed query string with an empty, {} or text body is refused', async () => {
    const no = await order();
    const query = new URLSearchParams(payment(no)).toString();
    const attempts = [
      request(ctx.app).post(`/notify?${query}`),
      request(ctx.app).post(`/notify?${query}`).set('Content-Type', 'application/json').send('{}'),
      request(ctx.app).post(`/notify?${query}`).set('Content-Type', 'text/plain').send('hello'),
      request(ctx.app).post(`/notify?${query}`).type('form').send(''),
    ];
    for (const attempt of attempts) {
      const res = await attempt;
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('validation_failed');
    }
    expect((await orderRow(no))!.status).toBe('pending');
    // The stored request is what the body held, never the query string passed off as it.
    const stored = (await logs(null)).slice(-4).map((l) => l.callback_data);
    expect(stored).toEqual(['', '{}', '', '']);
  });

  it('POST /callback ignores the query string too; GET /callback still reads it', async () => {
    const no = await order();
    const query = new URLSearchParams(payment(no)).toString();
    expect((await request(ctx.app).post(`/callback?${query}`).type('form').send('')).status).toBe(400);
    expect((await request(ctx.app).post(`/callback?${query}`)).status).toBe(400);
    expect((await request(ctx.app).post(`/callback?${query}`).set('Content-Type', 'text/plain').send('x')).status).toBe(400);
    expect((await orderRow(no))!.status).toBe('pending');
    expect((await request(ctx.app).get(`/callback?${query}`)).status).toBe(200);
    expect((await orderRow(no))!.status).toBe('paid');
  });

  it('an empty currency (or any empty field of ours) on a signed callback is refused, not skipped', async () => {
    for (const field of ['currency', 'timestamp', 'nonce']) {
      const no = await order();
      const res = await request(ctx.app)
        .post('/notify')
        .type('form')
        .send(payment(no, { [field]: '' }));
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ code: 'validation_failed' });
      expect(res.body.message).toContain(`${field} must not be empty`);
      expect((await orderRow(no))!.status).toBe('pending');
      expect((await logs(no)).map((l) => l.verdict)).toEqual(['malformed']);
    }
    // An empty extra parameter is still skipped as A5 says.
    const no = await order();
    expect(
      (
        await request(ctx.app)
          .post('/notify')
          .type('form')
          .send(payment(no, { memo: '' }))
      ).status,
    ).toBe(200);
  });
});
