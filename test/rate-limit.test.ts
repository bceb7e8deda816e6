import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createRedisRateLimitStore } from '../src/http/rate-limit-store.ts';
import { createLogger } from '../src/shared/logger.ts';
import { ADMIN_PASSWORD, csrfOf } from './helpers/admin.ts';
import { createTestContext, TEST_API_KEY, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const LIMIT = { RATE_LIMIT_PER_MINUTE: '3' };

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
const skipRedis = !redisUp && process.env.CI !== 'true';
if (skipRedis) {
  const bar = '!'.repeat(78);
  console.warn(`\n${bar}\n!! Redis at ${REDIS_URL} does not answer: the shared (Redis) rate-limit tests were NOT run.\n${bar}\n`);
}

function expectRateLimited(res: request.Response): void {
  expect(res.status).toBe(429);
  expect(res.body).toEqual({ success: false, code: 'rate_limited', message: expect.any(String) });
  expect(res.headers['retry-after']).toMatch(/^\d+$/);
  const seconds = Number(res.headers['retry-after']);
  expect(seconds).toBeGreaterThan(0);
  expect(seconds).toBeLessThanOrEqual(60);
}

describe.each(ENGINES)('rate limits on %s (in-memory store)', (engine) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(engine, { env: LIMIT });
  });
  afterAll(() => ctx?.close());

  it('allows RATE_LIMIT_PER_MINUTE requests, then answers 429 rate_limited with Retry-After', async () => {
    for (let i = 1; i <= 3; i++) {
      const res = await ctx.api('get', '/api/orders');
      expect(res.status).toBe(200);
      expect(res.headers['retry-after']).toBeUndefined();
    }
    expectRateLimited(await ctx.api('get', '/api/orders'));
    // /query_order shares the per-client budget, and a request without a key is limited too.
    expectRateLimited(await ctx.api('get', '/query_order?action=status&order_no=X1'));
    expectRateLimited(await request(ctx.app).get('/api/orders'));
  });

  it('does not limit the health endpoints', async () => {
    for (let i = 0; i < 10; i++) {
      expect((await request(ctx.app).get('/healthz')).status).toBe(200);
      expect((await request(ctx.app).get('/readyz')).status).toBe(200);
    }
  });
});

describe('rate limits count per app instance with the in-memory store', () => {
  it('health requests do not use up the API budget', async () => {
    const ctx = await createTestContext('sqlite', { env: LIMIT });
    try {
      for (let i = 0; i < 5; i++) expect((await request(ctx.app).get('/healthz')).status).toBe(200);
      for (let i = 0; i < 3; i++) expect((await ctx.api('get', '/api/orders')).status).toBe(200);
      expectRateLimited(await ctx.api('get', '/api/orders'));
    } finally {
      await ctx.close();
    }
  });
});

describe.skipIf(skipRedis)('rate limits shared through Redis', () => {
  const prefix = `pcs-test-${randomBytes(6).toString('hex')}:`;
  const logger = createLogger('silent');
  let admin: Redis;
  let stores: ReturnType<typeof createRedisRateLimitStore>[] = [];
  let apps: TestContext[] = [];

  beforeAll(async () => {
    expect(redisUp, `Redis at ${REDIS_URL} must answer (CI=true)`).toBe(true);
    admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    // Two instances behind a load balancer: separate apps, separate clients, the same Redis prefix.
    stores = [0, 1].map(() => createRedisRateLimitStore({ url: REDIS_URL, prefix }, logger));
    apps = await Promise.all(
      stores.map((s) => createTestContext('sqlite', { env: LIMIT, deps: { rateLimitStore: s.store, loginRateLimitStore: s.loginStore } })),
    );
  });

  afterAll(async () => {
    await Promise.all(apps.map((a) => a.close()));
    await Promise.all(stores.map((s) => s.close()));
    if (admin) {
      const keys = await admin.keys(`${prefix}*`);
      if (keys.length > 0) await admin.del(...keys);
      await admin.quit();
    }
  });

  it('shares one budget across both apps and keeps the counters in Redis under the prefix', async () => {
    const [a, b] = apps as [TestContext, TestContext];
    expect((await a.api('get', '/api/orders')).status).toBe(200);
    expect((await b.api('get', '/api/orders')).status).toBe(200);
    expect((await a.api('get', '/api/orders')).status).toBe(200);
    expectRateLimited(await b.api('get', '/api/orders'));
    expectRateLimited(await a.api('get', '/api/orders'));
    expectRateLimited(await request(b.app).get('/query_order?action=status&order_no=X1').set('X-API-Key', TEST_API_KEY));

    const keys = await admin.keys(`${prefix}*`);
    expect(keys.length).toBeGreaterThan(0);
    expect(keys.every((k) => k.startsWith(`${prefix}rl:`))).toBe(true);
    const hits = await Promise.all(keys.map((k) => admin.get(k)));
    expect(hits.map(Number).reduce((x, y) => x + y, 0)).toBeGreaterThanOrEqual(6);
    const ttl = await admin.pttl(keys[0]!);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });

  it("shares the console's failed-login limit across both apps, under its own prefix", async () => {
    // Wrong tries name no account: only the address limit is in play here (an account locks after 10 failures of its own).
    const attempt = async (ctx: TestContext, password: string) => {
      const agent = request.agent(ctx.app);
      const page = await agent.get('/admin/login');
      return agent
        .post('/admin/login')
        .type('form')
        .send({ _csrf: csrfOf(page.text), username: password === ADMIN_PASSWORD ? 'admin' : 'no-such-operator', password });
    };
    const [a, b] = apps as [TestContext, TestContext];
    // Ten failures in all, split between the instances, use up the one budget of this address.
    for (let i = 0; i < 5; i++) {
      expect((await attempt(a, `wrong-a${i}`)).status).toBe(401);
      expect((await attempt(b, `wrong-b${i}`)).status).toBe(401);
    }
    const limited = await attempt(a, 'wrong-11');
    expect(limited.status).toBe(429);
    expect(limited.text).toContain('Too many failed sign-in attempts');
    // The other instance refuses even the right password now: it read the same counter.
    expect((await attempt(b, ADMIN_PASSWORD)).status).toBe(429);

    const keys = await admin.keys(`${prefix}rl-login:*`);
    expect(keys.length).toBe(1);
    expect(Number(await admin.get(keys[0]!))).toBeGreaterThanOrEqual(10);
    const ttl = await admin.pttl(keys[0]!);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(15 * 60_000);
  });

  it('does not limit health endpoints with the Redis store either', async () => {
    for (const ctx of apps) {
      for (let i = 0; i < 5; i++) expect((await request(ctx.app).get('/healthz')).status).toBe(200);
    }
  });
});

describe('rate limits fail open when Redis is out of reach', () => {
  it('answers the API and the console login as if unlimited, never 500', async () => {
    // Nothing listens on port 1: every Redis command fails after one reconnection attempt.
    const store = createRedisRateLimitStore({ url: 'redis://127.0.0.1:1', prefix: 'pcs-down:' }, createLogger('silent'));
    // The service's own log hears about it once a minute per limiter; nothing goes to stderr per request.
    const warnings: unknown[] = [];
    const logger = Object.assign(createLogger('silent'), { warn: (...args: unknown[]) => void warnings.push(args) });
    const stderr = vi.spyOn(console, 'error');
    const ctx = await createTestContext('sqlite', { env: LIMIT, deps: { rateLimitStore: store.store, loginRateLimitStore: store.loginStore, logger } });
    try {
      for (let i = 0; i < 4; i++) expect((await ctx.api('get', '/api/orders')).status).toBe(200);
      const agent = request.agent(ctx.app);
      const page = await agent.get('/admin/login');
      const login = await agent
        .post('/admin/login')
        .type('form')
        .send({ _csrf: csrfOf(page.text), username: 'admin', password: 'wrong' });
      expect(login.status).toBe(401);
      expect(login.text).toContain('name="password"');
      expect(stderr).not.toHaveBeenCalled();
      const limiters = warnings.map((w) => (w as [{ limiter?: string }])[0].limiter).filter(Boolean);
      expect(limiters.sort()).toEqual(['api', 'console-login']);
    } finally {
      stderr.mockRestore();
      await ctx.close();
      await store.close();
    }
  });
});
