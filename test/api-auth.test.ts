import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKeyService, hashApiKey } from '../src/auth/api-key.service.ts';
import { systemClock } from '../src/shared/time.ts';
import { createTestContext, TEST_API_KEY, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';

function expectError(res: request.Response, status: number, code: string): void {
  expect(res.status).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect(res.body).toEqual({ success: false, code, message: expect.any(String) });
  expect(res.body.message.length).toBeGreaterThan(0);
}

describe.each(ENGINES)('API keys on %s', (engine) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(engine);
  });
  afterAll(() => ctx?.close());

  it('401 unauthorized without a key, on /api and /query_order', async () => {
    expectError(await request(ctx.app).get('/api/orders'), 401, 'unauthorized');
    expectError(await request(ctx.app).post('/api/orders').send({ amount: '1.00' }), 401, 'unauthorized');
    expectError(await request(ctx.app).get('/query_order?action=status&order_no=X1'), 401, 'unauthorized');
    expectError(await request(ctx.app).get('/query_order.php?action=status&order_no=X1'), 401, 'unauthorized');
  });

  it('401 unauthorized with a wrong key, an empty key or a non-Bearer scheme', async () => {
    expectError(await request(ctx.app).get('/api/orders').set('X-API-Key', `${TEST_API_KEY}x`), 401, 'unauthorized');
    expectError(await request(ctx.app).get('/api/orders').set('X-API-Key', TEST_API_KEY.slice(0, -1)), 401, 'unauthorized');
    expectError(await request(ctx.app).get('/api/orders').set('Authorization', 'Bearer nope'), 401, 'unauthorized');
    expectError(await request(ctx.app).get('/api/orders').set('Authorization', `Basic ${TEST_API_KEY}`), 401, 'unauthorized');
    expectError(await request(ctx.app).get('/api/orders').set('Authorization', `Bearer ${TEST_API_KEY} extra`), 401, 'unauthorized');
    expectError(await request(ctx.app).get('/query_order?action=status&order_no=X1').set('X-API-Key', 'wrong'), 401, 'unauthorized');
  });

  it('accepts the key as X-API-Key and as Authorization: Bearer', async () => {
    const viaHeader = await request(ctx.app).get('/api/orders').set('X-API-Key', TEST_API_KEY);
    expect(viaHeader.status).toBe(200);
    expect(viaHeader.body).toMatchObject({ success: true, data: expect.anything() });
    const viaBearer = await request(ctx.app).get('/api/orders').set('Authorization', `Bearer ${TEST_API_KEY}`);
    expect(viaBearer.status).toBe(200);
    const lowercaseScheme = await request(ctx.app).get('/api/orders').set('Authorization', `bearer ${TEST_API_KEY}`);
    expect(lowercaseScheme.status).toBe(200);
  });

  it('lets an authenticated /query_order call through to the route', async () => {
    const res = await request(ctx.app).get('/query_order?action=status&order_no=NO_SUCH_ORDER').set('X-API-Key', TEST_API_KEY);
    expectError(res, 404, 'not_found');
    const bearer = await request(ctx.app).get('/query_order.php?action=status&order_no=NO_SUCH_ORDER').set('Authorization', `Bearer ${TEST_API_KEY}`);
    expectError(bearer, 404, 'not_found');
  });

  it('accepts a key created in the database until it is revoked', async () => {
    const service = createApiKeyService(ctx.db, [], systemClock);
    const { id, key } = await service.create('merchant-a');
    expect(key).toMatch(/^pcs_[A-Za-z0-9_-]{40,}$/);

    expect((await request(ctx.app).get('/api/orders').set('X-API-Key', key)).status).toBe(200);
    expect((await request(ctx.app).get('/api/orders').set('Authorization', `Bearer ${key}`)).status).toBe(200);
    expect((await request(ctx.app).get('/query_order?action=status&order_no=NONE').set('X-API-Key', key)).status).toBe(404);
    const used = (await service.list()).find((row) => row.id === id);
    expect(used?.last_used_at).toBeTruthy();

    expect(await service.revoke(id)).toBe(true);
    expect(await service.revoke(id)).toBe(false);
    expectError(await request(ctx.app).get('/api/orders').set('X-API-Key', key), 401, 'unauthorized');
    expectError(await request(ctx.app).get('/api/orders').set('Authorization', `Bearer ${key}`), 401, 'unauthorized');
    // The environment key is unaffected by revoking a database key.
    expect((await ctx.api('get', '/api/orders')).status).toBe(200);
  });

  it('stores only a hash of the key', async () => {
    const service = createApiKeyService(ctx.db, [], systemClock);
    const { id, key } = await service.create('merchant-b');
    const rows = await ctx.db.kysely.selectFrom('api_keys').selectAll().execute();
    const row = rows.find((r) => Number(r.id) === id);
    expect(row?.key_hash).toBe(hashApiKey(key));
    expect(row?.key_hash).not.toBe(key);
    const stored = JSON.stringify(rows);
    expect(stored).not.toContain(key);
    expect(stored).not.toContain(key.slice(10));
    expect(stored).toContain(key.slice(0, 10)); // the display prefix only
  });
});

/** An app (on SQLite: this is about the network layer) with extra environment; closed after `fn`. */
async function withApp(env: Record<string, string>, fn: (ctx: TestContext) => Promise<void>): Promise<void> {
  const ctx = await createTestContext('sqlite', { env });
  try {
    await fn(ctx);
  } finally {
    await ctx.close();
  }
}

const get = (ctx: TestContext, path: string, forwardedFor?: string) => {
  const req = ctx.api('get', path);
  return forwardedFor ? req.set('X-Forwarded-For', forwardedFor) : req;
};

describe('API_IP_ALLOWLIST (supertest connects from 127.0.0.1)', () => {
  it('403 forbidden when the client is outside the allowlist, on /api and /query_order', async () => {
    await withApp({ API_IP_ALLOWLIST: '10.0.0.0/8, 2001:db8::/32, 192.0.2.1' }, async (ctx) => {
      expectError(await get(ctx, '/api/orders'), 403, 'forbidden');
      expectError(await get(ctx, '/query_order?action=status&order_no=X1'), 403, 'forbidden');
      expectError(await get(ctx, '/query_order.php?action=status&order_no=X1'), 403, 'forbidden');
      // The allowlist is checked before the key: even a keyless caller learns nothing more.
      expectError(await request(ctx.app).get('/api/orders'), 403, 'forbidden');
      // Health endpoints are not behind the API allowlist.
      expect((await request(ctx.app).get('/healthz')).status).toBe(200);
    });
  });

  it('allows a client inside an IPv4 CIDR range', async () => {
    await withApp({ API_IP_ALLOWLIST: '10.0.0.0/8,127.0.0.0/8' }, async (ctx) => {
      expect((await get(ctx, '/api/orders')).status).toBe(200);
      expectError(await get(ctx, '/query_order?action=status&order_no=NONE'), 404, 'not_found');
      expectError(await request(ctx.app).get('/api/orders'), 401, 'unauthorized');
    });
  });

  it('allows an exact IPv4 address and does not confuse ::1 with 127.0.0.1', async () => {
    await withApp({ API_IP_ALLOWLIST: '127.0.0.1' }, async (ctx) => {
      expect((await get(ctx, '/api/orders')).status).toBe(200);
    });
    await withApp({ API_IP_ALLOWLIST: '::1' }, async (ctx) => {
      expectError(await get(ctx, '/api/orders'), 403, 'forbidden');
    });
    await withApp({ API_IP_ALLOWLIST: '::1, 127.0.0.2' }, async (ctx) => {
      expectError(await get(ctx, '/api/orders'), 403, 'forbidden');
    });
  });

  it('ignores X-Forwarded-For without TRUST_PROXY (spoofing does not help)', async () => {
    await withApp({ API_IP_ALLOWLIST: '203.0.113.0/24' }, async (ctx) => {
      expectError(await get(ctx, '/api/orders', '203.0.113.7'), 403, 'forbidden');
      expectError(await get(ctx, '/query_order?action=status&order_no=X1', '203.0.113.7'), 403, 'forbidden');
    });
    await withApp({ API_IP_ALLOWLIST: '127.0.0.0/8' }, async (ctx) => {
      expect((await get(ctx, '/api/orders', '198.51.100.1')).status).toBe(200);
    });
  });

  it.each(['loopback', '1'])('with TRUST_PROXY=%s the X-Forwarded-For client decides', async (trustProxy) => {
    await withApp({ API_IP_ALLOWLIST: '203.0.113.0/24', TRUST_PROXY: trustProxy }, async (ctx) => {
      expect((await get(ctx, '/api/orders', '203.0.113.7')).status).toBe(200);
      expectError(await get(ctx, '/query_order?action=status&order_no=NONE', '203.0.113.7'), 404, 'not_found');
      expectError(await get(ctx, '/api/orders', '198.51.100.1'), 403, 'forbidden');
      expectError(await get(ctx, '/query_order?action=status&order_no=X1', '198.51.100.1'), 403, 'forbidden');
      // Without the header the proxy itself (127.0.0.1) is the client, and it is not on the list.
      expectError(await get(ctx, '/api/orders'), 403, 'forbidden');
    });
  });

  it('with TRUST_PROXY=1 only the hop the proxy appended counts, not a client-supplied one', async () => {
    await withApp({ API_IP_ALLOWLIST: '203.0.113.0/24', TRUST_PROXY: '1' }, async (ctx) => {
      // "spoofed, real": the proxy appended 198.51.100.1; the client sent 203.0.113.7 itself.
      expectError(await get(ctx, '/api/orders', '203.0.113.7, 198.51.100.1'), 403, 'forbidden');
      expect((await get(ctx, '/api/orders', '198.51.100.1, 203.0.113.7')).status).toBe(200);
    });
  });

  it('matches IPv6 forwarded clients against IPv6 CIDR entries', async () => {
    await withApp({ API_IP_ALLOWLIST: '2001:db8::/32', TRUST_PROXY: 'loopback' }, async (ctx) => {
      expect((await get(ctx, '/api/orders', '2001:db8:1::7')).status).toBe(200);
      expectError(await get(ctx, '/api/orders', '2001:db9::7'), 403, 'forbidden');
    });
  });
});
