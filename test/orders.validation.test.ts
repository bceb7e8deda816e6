import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENGINES } from './helpers/engines.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';

describe.each(ENGINES)('order validation on %s', (engine) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(engine);
  });
  afterAll(() => ctx.close());

  const orderCount = async () =>
    Number(
      (
        await ctx.db.kysely
          .selectFrom('orders')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );

  const invalid: Array<[string, Record<string, unknown>, string]> = [
    ['missing amount', {}, 'amount'],
    ['amount zero', { amount: '0' }, 'amount'],
    ['amount negative', { amount: '-5.00' }, 'amount'],
    ['amount negative number', { amount: -5 }, 'amount'],
    ['too many decimals', { amount: '1.001' }, 'amount'],
    ['JPY with decimals', { amount: '10.5', currency: 'JPY' }, 'amount'],
    ['exponent string', { amount: '1e3' }, 'amount'],
    ['amount boolean', { amount: true }, 'amount'],
    ['amount object', { amount: { value: 1 } }, 'amount'],
    ['amount array', { amount: ['1'] }, 'amount'],
    ['amount null', { amount: null }, 'amount'],
    ['amount too large', { amount: '100000000000000' }, 'amount'],
    ['unknown currency', { amount: '1', currency: 'XYZ' }, 'currency'],
    ['lower-case currency', { amount: '1', currency: 'cny' }, 'currency'],
    ['currency number', { amount: '1', currency: 156 }, 'currency'],
    ['order_no with space', { amount: '1', order_no: 'a b' }, 'order_no'],
    ['order_no too long', { amount: '1', order_no: 'x'.repeat(65) }, 'order_no'],
    ['order_no empty', { amount: '1', order_no: '' }, 'order_no'],
    ['order_no with quote', { amount: '1', order_no: "a'--" }, 'order_no'],
    ['order_no unicode', { amount: '1', order_no: '订单1' }, 'order_no'],
    ['order_no number', { amount: '1', order_no: 123 }, 'order_no'],
    ['bad payment_method', { amount: '1', payment_method: 'paypal' }, 'payment_method'],
    ['subject too long', { amount: '1', subject: 's'.repeat(257) }, 'subject'],
    ['subject object', { amount: '1', subject: { a: 1 } }, 'subject'],
    ['callback_url javascript', { amount: '1', callback_url: 'javascript:alert(1)' }, 'callback_url'],
    ['callback_url ftp', { amount: '1', callback_url: 'ftp://x.example/' }, 'callback_url'],
    ['notify_url relative', { amount: '1', notify_url: '/notify' }, 'notify_url'],
    ['notify_url file', { amount: '1', notify_url: 'file:///etc/passwd' }, 'notify_url'],
    ['notify_url too long', { amount: '1', notify_url: `https://x.example/${'a'.repeat(2048)}` }, 'notify_url'],
    ['metadata nested', { amount: '1', metadata: { a: { b: 1 } } }, 'metadata'],
    ['metadata array', { amount: '1', metadata: [1, 2] }, 'metadata'],
    ['metadata string', { amount: '1', metadata: 'x' }, 'metadata'],
    ['metadata __proto__ key', { amount: '1', metadata: JSON.parse('{"__proto__": "x"}') }, 'metadata'],
    ['metadata constructor key', { amount: '1', metadata: { constructor: 'x' } }, 'metadata'],
    ['metadata too many keys', { amount: '1', metadata: Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, i])) }, 'metadata'],
  ];

  it.each(invalid)('%s → 400 validation_failed naming the field', async (_name, body, field) => {
    const before = await orderCount();
    const res = await ctx.api('post', '/api/orders').send(body);
    expect(res.status).toBe(400);
    expect(res.body.success).toBe(false);
    expect(res.body.code).toBe('validation_failed');
    expect(typeof res.body.message).toBe('string');
    expect(res.body.errors.map((e: { path: string }) => e.path.split('.')[0])).toContain(field);
    expect(await orderCount()).toBe(before);
  });

  it('rejects a JSON array body and a JSON string body', async () => {
    expect((await ctx.api('post', '/api/orders').send([{ amount: '1' }])).status).toBe(400);
    const res = await ctx.api('post', '/api/orders').set('Content-Type', 'application/json').send('"1.00"');
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('validation_failed');
  });

  it('rejects bodies that are neither JSON nor a form with 415', async () => {
    const res = await ctx.api('post', '/api/orders').set('Content-Type', 'text/plain').send('amount=1');
    expect(res.status).toBe(415);
    expect(res.body.code).toBe('unsupported_media_type');
    const none = await ctx.api('post', '/api/orders');
    expect(none.status).toBe(415);
  });

  it('refuses JSON numbers in exponent notation but takes plain JSON decimals', async () => {
    const before = await orderCount();
    for (const raw of ['{"amount":1e3}', '{"amount":1E3}', '{"amount":"5.00","metadata":{"n":2e-2}}', '{"amount":1.5e2}']) {
      const res = await ctx.api('post', '/api/orders').set('Content-Type', 'application/json').send(raw);
      expect(res.status, raw).toBe(400);
      expect(res.body.code).toBe('validation_failed');
    }
    expect(await orderCount()).toBe(before);
    const text = await ctx.api('post', '/api/orders').set('Content-Type', 'application/json').send('{"amount":12.34,"subject":"e 1e3 E"}');
    expect(text.status).toBe(201);
    expect(text.body.data.amount).toBe('12.34');
  });

  it('reports an amount problem together with other field problems', async () => {
    const res = await ctx.api('post', '/api/orders').send({ amount: '-1', notify_url: 'ftp://x.example/' });
    expect(res.status).toBe(400);
    expect(res.body.errors.map((e: { path: string }) => e.path)).toEqual(expect.arrayContaining(['amount', 'notify_url']));
  });

  it('rejects metadata in a form body, and repeated form fields', async () => {
    const meta = await ctx.api('post', '/api/orders').type('form').send('amount=1&metadata=x');
    expect(meta.status).toBe(400);
    expect(meta.body.errors[0].path).toBe('metadata');
    const repeated = await ctx.api('post', '/api/orders').type('form').send('amount=1&amount=2');
    expect(repeated.status).toBe(400);
    expect(repeated.body.errors.map((e: { path: string }) => e.path)).toContain('amount');
  });

  it('ignores __proto__ at the top level of a JSON body without polluting objects', async () => {
    const res = await ctx
      .api('post', '/api/orders')
      .set('Content-Type', 'application/json')
      .send('{"amount":"2.00","__proto__":{"polluted":true},"constructor":{"x":1}}');
    expect(res.status).toBe(201);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(res.body.data.amount).toBe('2.00');
  });

  it('lists several problems at once', async () => {
    const res = await ctx.api('post', '/api/orders').send({ amount: 'abc', currency: 'XX', order_no: '!' });
    expect(res.status).toBe(400);
    const paths = res.body.errors.map((e: { path: string }) => e.path);
    expect(paths).toEqual(expect.arrayContaining(['currency', 'order_no']));
  });

  it('malformed JSON and oversized bodies get envelopes, not 500s, and write nothing', async () => {
    const before = await orderCount();
    const malformed = await ctx.api('post', '/api/orders').set('Content-Type', 'application/json').send('{"amount": "1",');
    expect(malformed.status).toBe(400);
    expect(malformed.body).toMatchObject({ success: false, code: 'validation_failed' });
    const big = await ctx.api('post', '/api/orders').send({ amount: '1', subject: 'x', pad: 'p'.repeat(70 * 1024) });
    expect(big.status).toBe(413);
    expect(big.body).toMatchObject({ success: false, code: 'payload_too_large' });
    expect(await orderCount()).toBe(before);
  });
});
