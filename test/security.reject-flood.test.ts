import { createHash, createHmac, generateKeyPairSync, randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRejectLimiter } from '../src/callbacks/reject-limiter.ts';
import { ConfigError, loadConfig } from '../src/config.ts';
import { createRedisRateLimitStore } from '../src/http/rate-limit-store.ts';
import { metricsOf } from '../src/metrics/metrics.registry.ts';
import { createLogger } from '../src/shared/logger.ts';
import { createTestContext, TEST_GATEWAY_SECRET, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';
import { signed } from './helpers/gateway-signer.ts';

/**
 * Rejected callbacks cannot fill the database: a refused request keeps at most 4 KiB of its body (with its
 * full size and SHA-256), and past CALLBACK_REJECT_RATE_PER_MINUTE a source address's refused requests are
 * answered 429 and not stored, while its correctly signed callbacks are still applied.
 */

const LIMIT = 5;
const EXCERPT_BYTES = 4096;
const STRIPE_SECRET = 'whsec_test_reject_flood_0123456789abcdef';
const rsa = () => generateKeyPairSync('rsa', { modulusLength: 2048 });
const alipayKey = rsa();
const wechatKey = rsa();
const spki = (key: ReturnType<typeof rsa>) => key.publicKey.export({ type: 'spki', format: 'pem' }).toString();

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

/** A form body of about 60 KB claiming `orderNo`, unsigned, whose 4 KiB cut falls inside a 3-byte character. */
function bigForgedBody(orderNo: string): string {
  let head = `order_no=${orderNo}&transaction_id=T1&amount=12.34&status=success&sign=FORGED&memo=`;
  while ((EXCERPT_BYTES - Buffer.byteLength(head)) % 3 === 0) head += 'a';
  return head + '中'.repeat(20_000);
}

describe.each(ENGINES)('rejected callbacks cannot flood storage on %s', (engine) => {
  let ctx: TestContext;
  let seq = 0;
  const tag = `${engine === 'mysql' ? 'M' : 'S'}${Date.now().toString(36)}`;

  beforeAll(async () => {
    ctx = await createTestContext(engine, {
      env: {
        TRUST_PROXY: 'true',
        CALLBACK_REJECT_RATE_PER_MINUTE: String(LIMIT),
        // The generic gateway only from 10/8: other addresses are refused before anything is verified.
        CALLBACK_IP_ALLOWLIST_GENERIC: '10.0.0.0/8',
        ALIPAY_APP_ID: '2021000000000001',
        ALIPAY_PUBLIC_KEY: spki(alipayKey),
        WECHATPAY_MCH_ID: '1900000109',
        WECHATPAY_APIV3_KEY: 'Vw3xK9pQ2mR7tY5uB8nL4cJ6hF1dS0aZ',
        WECHATPAY_PLATFORM_KEYS: JSON.stringify({ SERIAL1: spki(wechatKey) }),
        STRIPE_WEBHOOK_SECRET: STRIPE_SECRET,
      },
    });
  });
  afterAll(() => ctx?.close());

  async function order(currency = 'CNY'): Promise<string> {
    const orderNo = `${tag}R${++seq}`;
    expect((await ctx.api('post', '/api/orders').send({ order_no: orderNo, amount: '12.34', currency })).status).toBe(201);
    return orderNo;
  }
  const from = (ip: string) => ({ post: (path: string) => request(ctx.app).post(path).set('X-Forwarded-For', ip) });
  const rowsFrom = (ip: string) => ctx.db.kysely.selectFrom('payment_logs').selectAll().where('remote_ip', '=', ip).orderBy('id').execute();
  const metric = async (name: string, labels: string) => {
    const text = await metricsOf(ctx.app)!.registry.metrics();
    const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
    return line ? Number(line.split(' ').at(-1)) : 0;
  };

  it('stores at most 4 KiB of a 60 KB forged request, cut at a character boundary, with its size and SHA-256', async () => {
    const orderNo = await order();
    const body = bigForgedBody(orderNo);
    expect(Buffer.byteLength(body)).toBeGreaterThan(60_000);
    const res = await from('10.1.0.1').post('/notify').type('form').send(body);
    expect(res.status).toBe(401);
    const [row] = await rowsFrom('10.1.0.1');
    expect(row).toMatchObject({ order_no: orderNo, verdict: 'bad_signature', callback_bytes: Buffer.byteLength(body), callback_sha256: sha256(body) });
    expect(Number(row!.unverified)).toBe(1);
    const kept = Buffer.byteLength(row!.callback_data);
    expect(kept).toBeLessThanOrEqual(EXCERPT_BYTES);
    expect(kept).toBeGreaterThan(EXCERPT_BYTES - 3);
    expect(body.startsWith(row!.callback_data)).toBe(true);
    expect(row!.callback_data.endsWith('中')).toBe(true);
  });

  it('stores a forbidden (allowlist) request the same way', async () => {
    const orderNo = await order();
    const body = bigForgedBody(orderNo);
    const res = await from('203.0.113.7').post('/notify').type('form').send(body);
    expect(res.status).toBe(403);
    const [row] = await rowsFrom('203.0.113.7');
    // Filed under the order it names, as an unverified entry the order's rejected requests list.
    expect(row).toMatchObject({
      verdict: 'forbidden',
      order_no: orderNo,
      unverified: 1,
      callback_bytes: Buffer.byteLength(body),
      callback_sha256: sha256(body),
    });
    expect(Buffer.byteLength(row!.callback_data)).toBeLessThanOrEqual(EXCERPT_BYTES);
    expect(body.startsWith(row!.callback_data)).toBe(true);
    const detail = await ctx.api('get', `/api/orders/${orderNo}/rejected-callbacks`);
    expect(detail.body.data.items.map((i: { verdict: string }) => i.verdict)).toContain('forbidden');
  });

  it('keeps the whole body of a verified callback, without a size or hash', async () => {
    const orderNo = await order();
    const params = signed(
      { order_no: orderNo, transaction_id: `TX-${orderNo}`, amount: '12.34', status: 'success', memo: '中'.repeat(3000) },
      TEST_GATEWAY_SECRET,
    );
    const res = await from('10.1.0.2').post('/notify').type('form').send(params);
    expect(res.status).toBe(200);
    const [row] = await rowsFrom('10.1.0.2');
    expect(row).toMatchObject({ verdict: 'applied', callback_bytes: null, callback_sha256: null });
    expect(Number(row!.unverified)).toBe(0);
    expect(new URLSearchParams(row!.callback_data).get('memo')).toBe('中'.repeat(3000));
  });

  it('answers 429 past the limit and stores nothing more, yet applies a correctly signed callback from that address', async () => {
    const ip = '10.2.0.1';
    const orderNo = await order();
    const forged = `order_no=${orderNo}&transaction_id=T1&amount=12.34&status=success&sign=FORGED`;
    const droppedBefore = await metric('payment_callbacks_dropped_total', 'gateway="generic"');
    for (let i = 0; i < LIMIT; i++) expect((await from(ip).post('/notify').type('form').send(forged)).status).toBe(401);
    for (let i = 0; i < 3; i++) {
      const res = await from(ip).post('/notify').type('form').send(forged);
      expect(res.status).toBe(429);
      expect(res.headers['retry-after']).toBe('60');
      expect(res.body).toMatchObject({ success: false, code: 'rate_limited' });
    }
    // Malformed requests are refused before verification too, and limited alike.
    expect((await from(ip).post('/notify').type('form').send('order_no[]=x')).status).toBe(429);
    expect(await rowsFrom(ip)).toHaveLength(LIMIT);
    expect(await metric('payment_callbacks_dropped_total', 'gateway="generic"')).toBe(droppedBefore + 4);
    expect(await metric('payment_callbacks_total', 'gateway="generic",verdict="rate_limited"')).toBeGreaterThanOrEqual(4);

    const genuine = await from(ip)
      .post('/notify')
      .type('form')
      .send(signed({ order_no: orderNo, transaction_id: `TX-${orderNo}`, amount: '12.34', status: 'success' }, TEST_GATEWAY_SECRET));
    expect(genuine.status).toBe(200);
    expect(genuine.body.data).toEqual({ order_no: orderNo, status: 'paid' });
    const rows = await rowsFrom(ip);
    expect(rows.map((r) => r.verdict)).toEqual([...Array<string>(LIMIT).fill('bad_signature'), 'applied']);
    // The shopper's return route shares the budget: its page answers 429 too, and nothing is stored.
    expect((await request(ctx.app).get('/callback?order_no=X&sign=FORGED').set('X-Forwarded-For', ip)).status).toBe(429);
    expect(await rowsFrom(ip)).toHaveLength(LIMIT + 1);
    // Another address has its own budget.
    expect((await from('10.2.0.2').post('/notify').type('form').send(forged)).status).toBe(401);
    expect(await rowsFrom('10.2.0.2')).toHaveLength(1);
  });

  it('limits forbidden requests from an address outside the allowlist alike', async () => {
    const ip = '198.51.100.9';
    for (let i = 0; i < LIMIT; i++) expect((await from(ip).post('/notify').type('form').send('order_no=X&sign=Y')).status).toBe(403);
    expect((await from(ip).post('/notify').type('form').send('order_no=X&sign=Y')).status).toBe(429);
    expect(await rowsFrom(ip)).toHaveLength(LIMIT);
  });

  it('answers in each gateway’s own format once limited', async () => {
    const flood = async (ip: string, send: () => request.Test) => {
      for (let i = 0; i < LIMIT; i++) expect((await send()).status).toBeLessThan(429);
      const res = await send();
      expect(await rowsFrom(ip)).toHaveLength(LIMIT);
      return res;
    };
    const alipay = await flood('10.3.0.1', () => from('10.3.0.1').post('/notify/alipay').type('form').send('out_trade_no=X&sign=Zm9v&sign_type=RSA2'));
    expect(alipay.status).toBe(429);
    expect(alipay.headers['retry-after']).toBe('60');
    expect(alipay.text).toBe('fail');
    expect((await request(ctx.app).get('/callback/alipay?out_trade_no=X&sign=Zm9v').set('X-Forwarded-For', '10.3.0.1')).status).toBe(429);
    expect(await rowsFrom('10.3.0.1')).toHaveLength(LIMIT);
    const wechat = await flood('10.3.0.2', () => from('10.3.0.2').post('/notify/wechatpay').type('json').send('{"id":"x"}'));
    expect(wechat.status).toBe(429);
    expect(wechat.body).toMatchObject({ code: 'FAIL' });
    const stripeBody = JSON.stringify({ id: 'evt_1', type: 'payment_intent.succeeded', data: { object: {} } });
    const stripe = await flood('10.3.0.3', () => from('10.3.0.3').post('/notify/stripe').type('json').set('Stripe-Signature', 't=1,v1=00').send(stripeBody));
    expect(stripe.status).toBeGreaterThanOrEqual(400);
    expect(stripe.status).toBeLessThan(500);
    expect(stripe.body).toHaveProperty('error');

    // A correctly signed Stripe event from the limited address is still applied.
    const orderNo = await order('USD');
    const event = JSON.stringify({
      id: `evt_${orderNo}`,
      object: 'event',
      type: 'payment_intent.succeeded',
      data: { object: { id: `pi_${orderNo}`, object: 'payment_intent', amount_received: 1234, currency: 'usd', metadata: { order_no: orderNo } } },
    });
    const t = Math.floor(Date.now() / 1000);
    const signature = createHmac('sha256', STRIPE_SECRET).update(`${t}.${event}`).digest('hex');
    const res = await from('10.3.0.3').post('/notify/stripe').type('json').set('Stripe-Signature', `t=${t},v1=${signature}`).send(event);
    expect(res.status).toBe(200);
    expect((await rowsFrom('10.3.0.3')).at(-1)).toMatchObject({ verdict: 'applied', order_no: orderNo });
  });
});

describe('CALLBACK_REJECT_RATE_PER_MINUTE', () => {
  it('defaults to 60, takes a whole number, and 0 or off turns the limit off', () => {
    expect(loadConfig({}).callbackRejectRatePerMinute).toBe(60);
    expect(loadConfig({ CALLBACK_REJECT_RATE_PER_MINUTE: '5' }).callbackRejectRatePerMinute).toBe(5);
    expect(loadConfig({ CALLBACK_REJECT_RATE_PER_MINUTE: '0' }).callbackRejectRatePerMinute).toBeNull();
    expect(loadConfig({ CALLBACK_REJECT_RATE_PER_MINUTE: 'off' }).callbackRejectRatePerMinute).toBeNull();
    for (const bad of ['-1', 'lots', '2.5']) {
      expect(() => loadConfig({ CALLBACK_REJECT_RATE_PER_MINUTE: bad })).toThrow(ConfigError);
    }
  });
});

describe('the rejected-callback counter in memory', () => {
  it('starts afresh each minute and never tracks more than its cap of addresses', async () => {
    let now = 0;
    const limiter = createRejectLimiter({ perMinute: 2, now: () => now, maxAddresses: 3 });
    const over = (ip: string) => limiter.exceeded(ip);
    expect([await over('192.0.2.1'), await over('192.0.2.1'), await over('192.0.2.1')]).toEqual([false, false, true]);
    now += 60_000;
    expect(await over('192.0.2.1')).toBe(false);
    // Past the cap, new addresses share one budget instead of growing the table.
    await over('192.0.2.2');
    await over('192.0.2.3');
    expect([await over('192.0.2.4'), await over('192.0.2.5'), await over('192.0.2.6')]).toEqual([false, false, true]);
    // One IPv6 host's many addresses (its /56) count as one.
    now += 60_000;
    expect([await over('2001:db8:0:1::1'), await over('2001:db8:0:2::2'), await over('2001:db8:0:3::3')]).toEqual([false, false, true]);
  });
});

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
async function redisAnswers(url: string): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, connectTimeout: 2000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}
const redisUp = await redisAnswers(REDIS_URL);
if (!redisUp) console.warn(`!! Redis at ${REDIS_URL} does not answer: the shared rejected-callback limit was NOT tested.`);

describe.skipIf(!redisUp && process.env.CI !== 'true')('the rejected-callback limit shared through Redis', () => {
  const prefix = `pcs-test-${randomBytes(6).toString('hex')}:`;
  const stores: ReturnType<typeof createRedisRateLimitStore>[] = [];
  const apps: TestContext[] = [];
  let admin: Redis;

  beforeAll(async () => {
    admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    for (let i = 0; i < 2; i++) stores.push(createRedisRateLimitStore({ url: REDIS_URL, prefix }, createLogger('silent')));
    const env = { CALLBACK_REJECT_RATE_PER_MINUTE: String(LIMIT) };
    for (const s of stores) apps.push(await createTestContext('sqlite', { env, deps: { rejectRateLimitStore: s.rejectStore } }));
  });
  afterAll(async () => {
    await Promise.all(apps.map((a) => a.close()));
    await Promise.all(stores.map((s) => s.close()));
    const keys = await admin.keys(`${prefix}*`);
    if (keys.length > 0) await admin.del(...keys);
    await admin.quit();
  });

  it('counts an address across instances, under its own key prefix', async () => {
    const [a, b] = apps as [TestContext, TestContext];
    const send = (ctx: TestContext) => request(ctx.app).post('/notify').type('form').send('order_no=X&sign=FORGED');
    for (let i = 0; i < LIMIT; i++) expect((await send(i % 2 === 0 ? a : b)).status).toBe(401);
    expect((await send(a)).status).toBe(429);
    expect((await send(b)).status).toBe(429);
    const keys = await admin.keys(`${prefix}*`);
    expect(keys).toHaveLength(1);
    expect(keys[0]!.startsWith(`${prefix}rl-reject:`)).toBe(true);
    expect(Number(await admin.get(keys[0]!))).toBe(LIMIT + 2);
    const ttl = await admin.pttl(keys[0]!);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });
});

describe('the rejected-callback limit with Redis out of reach', () => {
  it('counts in this process instead', async () => {
    const store = createRedisRateLimitStore({ url: 'redis://127.0.0.1:1', prefix: 'pcs-down:' }, createLogger('silent'));
    const ctx = await createTestContext('sqlite', {
      env: { CALLBACK_REJECT_RATE_PER_MINUTE: String(LIMIT) },
      deps: { rejectRateLimitStore: store.rejectStore },
    });
    try {
      const send = () => request(ctx.app).post('/notify').type('form').send('order_no=X&sign=FORGED');
      for (let i = 0; i < LIMIT; i++) expect((await send()).status).toBe(401);
      expect((await send()).status).toBe(429);
    } finally {
      await ctx.close();
      await store.close();
    }
  });
});
