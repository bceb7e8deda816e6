import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ADMIN_PASSWORD, csrfOf } from './helpers/admin.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';

/*
 * When the limits' windows end: the API's per-minute budget and the console's failed logins (10 per 15 minutes),
 * with the clock the in-memory counters read (Date) moved by the test. Only Date is faked: timers, sockets and
 * the database run as usual. The counters are in memory, whatever the engine: SQLite serves the requests.
 */
const MINUTE = 60_000;
const LOGIN_WINDOW = 15 * MINUTE;

describe('rate-limit windows end exactly when they should', () => {
  let ctx: TestContext;
  let t0 = 0;
  beforeAll(async () => {
    ctx = await createTestContext('sqlite', { env: { RATE_LIMIT_PER_MINUTE: '3' } });
  });
  afterAll(() => ctx.close());
  afterEach(() => vi.useRealTimers());

  const at = (ms: number) => vi.setSystemTime(t0 + ms);
  const freeze = () => {
    t0 = Math.floor(Date.now() / 1000) * 1000 + 3600_000; // ahead of anything counted before
    vi.useFakeTimers({ toFake: ['Date'], now: t0 });
  };

  it('API: the budget of RATE_LIMIT_PER_MINUTE comes back 60 s after the first request, not a millisecond sooner', async () => {
    freeze();
    for (let i = 0; i < 3; i++) expect((await ctx.api('get', '/api/orders')).status).toBe(200);
    at(30_000);
    const limited = await ctx.api('get', '/api/orders');
    expect(limited.status).toBe(429);
    expect(limited.headers['retry-after']).toBe('30');
    at(MINUTE - 1);
    const last = await ctx.api('get', '/api/orders');
    expect(last.status).toBe(429);
    expect(last.headers['retry-after']).toBe('1');
    at(MINUTE);
    for (let i = 0; i < 3; i++) expect((await ctx.api('get', '/api/orders')).status).toBe(200);
    expect((await ctx.api('get', '/api/orders')).status).toBe(429);
    // The next window is again a full minute long, counted from its first request.
    at(2 * MINUTE - 1);
    expect((await ctx.api('get', '/api/orders')).status).toBe(429);
    at(2 * MINUTE);
    expect((await ctx.api('get', '/api/orders')).status).toBe(200);
  });

  it('console: after 10 failed logins the address may try again 15 minutes after the first failure, not sooner', async () => {
    freeze();
    // Wrong tries name no account: only the address limit is in play here (an account locks after 10 failures of its own).
    const NO_ACCOUNT = 'no-such-operator';
    const attempt = async (password: string) => {
      const agent = request.agent(ctx.app);
      const page = await agent.get('/admin/login');
      return agent
        .post('/admin/login')
        .type('form')
        .send({ _csrf: csrfOf(page.text), username: password === ADMIN_PASSWORD ? 'admin' : NO_ACCOUNT, password });
    };
    for (let i = 0; i < 10; i++) {
      at(i * 1000);
      expect((await attempt(`wrong-${i}`)).status).toBe(401);
    }
    at(10_000);
    expect((await attempt('wrong-again')).status).toBe(429);
    at(LOGIN_WINDOW - 1);
    const stillLimited = await attempt(ADMIN_PASSWORD);
    expect(stillLimited.status).toBe(429);
    expect(stillLimited.text).toContain('Too many failed sign-in attempts');
    at(LOGIN_WINDOW);
    expect((await attempt('wrong-after')).status).toBe(401);
    expect((await attempt(ADMIN_PASSWORD)).status).toBe(303);
  });
});
