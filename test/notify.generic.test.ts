import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import request from 'supertest';
import { ENGINES } from './helpers/engines.ts';
import { createTestContext, TEST_GATEWAY_SECRET, type TestContext } from './helpers/context.ts';
import { gatewaySign, signed } from './helpers/gateway-signer.ts';

/** A fixed clock, 999 ms into a second: timestamps signed against it are judged the same on every run. */
const NOW = new Date('2025-06-06T08:00:00.999Z');
const NOW_S = Math.floor(NOW.getTime() / 1000);
const nowSeconds = () => String(NOW_S);

describe.each(ENGINES)('POST /notify (generic gateway) on %s', (engine) => {
  let ctx: TestContext;
  let seq = 0;
  beforeAll(async () => {
    ctx = await createTestContext(engine, { clock: () => NOW });
  });
  afterAll(() => ctx.close());

  /** A fresh pending order; returns its number. */
  async function order(amount = '12.34', extra: Record<string, unknown> = {}): Promise<string> {
    const order_no = `G${++seq}`;
    const res = await ctx.api('post', '/api/orders').send({ order_no, amount, notify_url: 'https://merchant.example/notify', ...extra });
    expect(res.status).toBe(201);
    return order_no;
  }
  const payment = (order_no: string, extra: Record<string, string> = {}) => ({
    order_no,
    transaction_id: `TX-${order_no}`,
    amount: '12.34',
    status: 'success',
    ...extra,
  });
  const notify = (body: Record<string, unknown> | string, path = '/notify') => request(ctx.app).post(path).type('form').send(body);
  const orderRow = (order_no: string) => ctx.db.kysely.selectFrom('orders').selectAll().where('order_no', '=', order_no).executeTakeFirstOrThrow();
  const logs = (order_no: string | null) =>
    ctx.db.kysely
      .selectFrom('payment_logs')
      .selectAll()
      .where('order_no', order_no === null ? 'is' : '=', order_no)
      .orderBy('id')
      .execute();
  const events = (order_no: string) => ctx.db.kysely.selectFrom('notifications').selectAll().where('order_no', '=', order_no).orderBy('seq').execute();

  it.each(['/notify', '/notify/generic', '/notify.php'])('applies an MD5-signed form notification on %s', async (path) => {
    const no = await order();
    const res = await notify(signed(payment(no, { timestamp: nowSeconds(), nonce: `n-${no}` }), TEST_GATEWAY_SECRET), path);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ success: true, data: { order_no: no, status: 'paid' }, message: 'payment applied' });
    const row = await orderRow(no);
    expect(row).toMatchObject({ status: 'paid', transaction_id: `TX-${no}`, seq: 1, flagged: 0 });
    expect(row.paid_at).not.toBeNull();
    const [log] = await logs(no);
    expect(log).toMatchObject({
      gateway: 'generic',
      kind: 'notify',
      verdict: 'applied',
      transaction_id: `TX-${no}`,
      amount_minor: 1234,
      currency: 'CNY',
      remote_ip: expect.stringContaining('127.0.0.1'),
    });
    expect(log!.callback_data).toContain(`order_no=${no}`);
    expect(JSON.parse(log!.payment_data!)).toMatchObject({ orderNo: no, transactionId: `TX-${no}`, outcome: 'paid' });
    const [event] = await events(no);
    expect(event).toMatchObject({ type: 'order.paid', seq: 1, status: 'pending', url: 'https://merchant.example/notify' });
    expect(JSON.parse(event!.payload)).toMatchObject({
      event_id: event!.event_id,
      type: 'order.paid',
      order_no: no,
      transaction_id: `TX-${no}`,
      amount: '12.34',
      currency: 'CNY',
      status: 'paid',
      seq: 1,
    });
  });

  it('applies HMAC-SHA256 signatures, flat JSON bodies, lower-case signatures and an explicit currency', async () => {
    const a = await order();
    expect((await notify(signed(payment(a), TEST_GATEWAY_SECRET, 'HMAC-SHA256'))).status).toBe(200);
    const b = await order();
    const json = await request(ctx.app)
      .post('/notify')
      .send(signed(payment(b, { currency: 'CNY' }), TEST_GATEWAY_SECRET));
    expect(json.status).toBe(200);
    const c = await order();
    const lower = signed(payment(c), TEST_GATEWAY_SECRET);
    expect((await notify({ ...lower, sign: lower.sign!.toLowerCase() })).status).toBe(200);
    for (const no of [a, b, c]) expect((await orderRow(no)).status).toBe('paid');
  });

  it('signs parameters exactly as received: empty values skipped, unknown extra fields included', async () => {
    const no = await order();
    const params = { ...payment(no), attach: 'a=b&c', memo: '', zh: '中文 + 空格' };
    const res = await notify({ ...params, sign: gatewaySign(params, TEST_GATEWAY_SECRET) });
    expect(res.status).toBe(200);
    const tampered = await order();
    const p2 = { ...payment(tampered), attach: 'x' };
    const forged = await notify({ ...p2, attach: 'y', sign: gatewaySign(p2, TEST_GATEWAY_SECRET) });
    expect(forged.status).toBe(401);
  });

  it('refuses an optional field of ours sent empty (it would not be signed): 400, order unchanged', async () => {
    const no = await order();
    const res = await notify(signed(payment(no, { currency: '', timestamp: '', nonce: '' }), TEST_GATEWAY_SECRET));
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('validation_failed');
    expect((await orderRow(no)).status).toBe('pending');
  });

  it('answers 200 to a duplicate with the same transaction_id and writes nothing new but a log row', async () => {
    const no = await order();
    const params = signed(payment(no), TEST_GATEWAY_SECRET);
    expect((await notify(params)).status).toBe(200);
    const again = await notify(params);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ success: true, data: { order_no: no, status: 'paid' } });
    expect((await orderRow(no)).seq).toBe(1);
    expect(await events(no)).toHaveLength(1);
    expect((await logs(no)).map((l) => l.verdict)).toEqual(['applied', 'duplicate']);
  });

  const rejections: Array<[string, (no: string) => Record<string, string>, number, string, string]> = [
    ['wrong key', (no) => signed(payment(no), 'not-the-gateway-secret'), 401, 'bad_signature', 'bad_signature'],
    ['missing sign', (no) => payment(no), 401, 'bad_signature', 'bad_signature'],
    ['empty sign', (no) => ({ ...payment(no), sign: '' }), 401, 'bad_signature', 'bad_signature'],
    [
      'HMAC sign presented as MD5',
      (no) => ({ ...signed(payment(no), TEST_GATEWAY_SECRET, 'HMAC-SHA256'), sign_type: 'MD5' }),
      401,
      'bad_signature',
      'bad_signature',
    ],
    ['tampered amount', (no) => ({ ...signed(payment(no), TEST_GATEWAY_SECRET), amount: '0.01' }), 401, 'bad_signature', 'bad_signature'],
    [
      'tampered status',
      (no) => ({ ...signed(payment(no, { status: 'failed' }), TEST_GATEWAY_SECRET), status: 'success' }),
      401,
      'bad_signature',
      'bad_signature',
    ],
    [
      'tampered currency',
      (no) => ({ ...signed(payment(no, { currency: 'USD' }), TEST_GATEWAY_SECRET), currency: 'CNY' }),
      401,
      'bad_signature',
      'bad_signature',
    ],
    ['signed wrong amount', (no) => signed(payment(no, { amount: '0.01' }), TEST_GATEWAY_SECRET), 409, 'amount_mismatch', 'amount_mismatch'],
    ['signed wrong currency', (no) => signed(payment(no, { currency: 'USD' }), TEST_GATEWAY_SECRET), 409, 'amount_mismatch', 'amount_mismatch'],
    ['signed too many decimals', (no) => signed(payment(no, { amount: '12.345' }), TEST_GATEWAY_SECRET), 409, 'amount_mismatch', 'amount_mismatch'],
    ['stale timestamp', (no) => signed(payment(no, { timestamp: String(NOW_S - 301) }), TEST_GATEWAY_SECRET), 409, 'replayed', 'replayed'],
    ['future timestamp', (no) => signed(payment(no, { timestamp: String(NOW_S + 301) }), TEST_GATEWAY_SECRET), 409, 'replayed', 'replayed'],
    ['bad timestamp', (no) => signed(payment(no, { timestamp: 'yesterday' }), TEST_GATEWAY_SECRET), 400, 'validation_failed', 'malformed'],
    ['bad status', (no) => signed(payment(no, { status: 'paid' }), TEST_GATEWAY_SECRET), 400, 'validation_failed', 'malformed'],
    ['bad amount', (no) => signed(payment(no, { amount: '1e3' }), TEST_GATEWAY_SECRET), 400, 'validation_failed', 'malformed'],
    ['bad sign_type', (no) => ({ ...signed(payment(no), TEST_GATEWAY_SECRET), sign_type: 'SHA1' }), 400, 'validation_failed', 'malformed'],
    [
      'missing transaction_id',
      (no) => signed({ order_no: no, amount: '12.34', status: 'success' }, TEST_GATEWAY_SECRET),
      400,
      'validation_failed',
      'malformed',
    ],
  ];

  it.each(rejections)('%s → %d %s, logged as %s, order unchanged', async (_name, build, status, code, verdict) => {
    const no = await order();
    const res = await notify(build(no));
    expect(res.status).toBe(status);
    expect(res.body).toMatchObject({ success: false, code });
    expect(typeof res.body.message).toBe('string');
    const row = await orderRow(no);
    expect(row).toMatchObject({ status: 'pending', transaction_id: null, seq: 0 });
    expect(await events(no)).toHaveLength(0);
    const entries = await logs(no);
    expect(entries.map((l) => l.verdict)).toEqual([verdict]);
    expect(entries[0]!.flagged).toBe(verdict === 'amount_mismatch' ? 1 : 0);
  });

  it('refuses a reused nonce with 409 replayed, also after the first use was applied', async () => {
    const no = await order();
    const params = signed(payment(no, { timestamp: nowSeconds(), nonce: 'nonce-reuse-1' }), TEST_GATEWAY_SECRET);
    expect((await notify(params)).status).toBe(200);
    const replay = await notify(params);
    expect(replay.status).toBe(409);
    expect(replay.body.code).toBe('replayed');
    const other = await order();
    const sameNonce = signed(payment(other, { timestamp: nowSeconds(), nonce: 'nonce-reuse-1' }), TEST_GATEWAY_SECRET);
    expect((await notify(sameNonce)).body.code).toBe('replayed');
    expect((await orderRow(other)).status).toBe('pending');
    expect((await logs(no)).map((l) => l.verdict)).toEqual(['applied', 'replayed']);
  });

  it('answers 404 for an unknown order and records it, flagged, for operators', async () => {
    const res = await notify(signed(payment('NO_SUCH_ORDER'), TEST_GATEWAY_SECRET));
    expect(res.status).toBe(404);
    expect(res.body.code).toBe('not_found');
    const [log] = await logs('NO_SUCH_ORDER');
    expect(log).toMatchObject({ verdict: 'unknown_order', flagged: 1 });
  });

  it.each([
    ['array value', 'order_no=ARR&amount[]=1&amount[]=2&status=success&sign=X'],
    ['repeated key', 'order_no=ARR&amount=1&amount=2&status=success&sign=X'],
    ['__proto__ key', 'order_no=ARR&__proto__=x&amount=1&status=success&sign=X'],
    ['constructor key', 'order_no=ARR&constructor=x&amount=1&status=success&sign=X'],
  ])('form with %s → 400 malformed, never a 500', async (_name, body) => {
    const res = await request(ctx.app).post('/notify').type('form').send(body);
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('validation_failed');
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });

  it.each([
    ['nested object', '{"order_no":"OBJ","amount":{"v":"1"},"status":"success","sign":"X"}'],
    ['array', '{"order_no":"OBJ","amount":["1"],"status":"success","sign":"X"}'],
    ['__proto__ key', '{"order_no":"OBJ","__proto__":{"polluted":1},"amount":"1","status":"success","sign":"X"}'],
    ['boolean', '{"order_no":"OBJ","amount":"1","status":true,"sign":"X"}'],
    ['null', '{"order_no":"OBJ","amount":null,"status":"success","sign":"X"}'],
    ['top-level array', '[{"order_no":"OBJ"}]'],
  ])('JSON with %s → 400 malformed, logged', async (_name, body) => {
    const before = (await logs('OBJ')).length;
    const res = await request(ctx.app).post('/notify').set('Content-Type', 'application/json').send(body);
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('validation_failed');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    if (!body.startsWith('[')) expect((await logs('OBJ')).length).toBe(before + 1);
  });

  it('refuses oversized and empty bodies without touching anything', async () => {
    const big = await notify({ ...payment('BIG'), pad: 'x'.repeat(70 * 1024), sign: 'X' });
    expect(big.status).toBe(413);
    expect(big.body.code).toBe('payload_too_large');
    const empty = await request(ctx.app).post('/notify');
    expect(empty.status).toBe(400);
    const malformedJson = await request(ctx.app).post('/notify').set('Content-Type', 'application/json').send('{"order_no":');
    expect(malformedJson.status).toBe(400);
  });

  it('accepts JSON numbers signed as JSON writes them', async () => {
    const no = await order('5');
    const params = { order_no: no, transaction_id: 'NUM-1', amount: '5', status: 'success', timestamp: nowSeconds() };
    const body = JSON.stringify({ ...params, amount: 5, timestamp: Number(params.timestamp), sign: gatewaySign(params, TEST_GATEWAY_SECRET) });
    const res = await request(ctx.app).post('/notify').set('Content-Type', 'application/json').send(body);
    expect(res.status).toBe(200);
  });
});
