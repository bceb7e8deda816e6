import { createHmac } from 'node:crypto';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAdminAuth, safeNext, SESSION_COOKIE } from '../src/admin/admin-session.ts';
import { ADMIN_PASSWORD, csrfOf, setCookie, signedInAgent } from './helpers/admin.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';
import { createOrder, orderRow } from './helpers/pages.ts';

/** DESIGN A8 / issue 6 item 1: console login, session cookie, CSRF, rate limit. */

describe.each(ENGINES)('console login and session on %s', (engine) => {
  let ctx: TestContext;
  let now = Date.now();
  beforeAll(async () => {
    ctx = await createTestContext(engine, { clock: () => new Date(now) });
  });
  afterAll(() => ctx.close());

  it('sends anonymous visitors to the login, remembering where they were going', async () => {
    const root = await request(ctx.app).get('/admin');
    expect(root.status).toBe(303);
    expect(root.headers.location).toBe('/admin/login');
    const deep = await request(ctx.app).get('/admin/orders?status=paid&q=AB');
    expect(deep.headers.location).toBe(`/admin/login?next=${encodeURIComponent('/admin/orders?status=paid&q=AB')}`);
    for (const path of ['/admin/inbox', '/admin/orders/X1', '/admin/does-not-exist']) {
      expect((await request(ctx.app).get(path)).headers.location).toMatch(/^\/admin\/login/);
    }
    const login = await request(ctx.app).get('/admin/login');
    expect(login.status).toBe(200);
    expect(login.headers['cache-control']).toBe('no-store');
    expect(login.text).toContain('id="login-form"');
    expect(login.text).toMatch(/name="_csrf" value="[^"]+"/);
    expect(login.text).toContain('type="password"');
  });

  it('a wrong password shows the login page with an error and sets no session', async () => {
    const agent = request.agent(ctx.app);
    const page = await agent.get('/admin/login');
    const res = await agent
      .post('/admin/login')
      .type('form')
      .send({ _csrf: csrfOf(page.text), username: 'admin', password: 'wrong-password' });
    expect(res.status).toBe(401);
    expect(res.text).toContain('id="login-error"');
    expect(res.text).toContain('The username or password is not correct.');
    expect(setCookie(res, SESSION_COOKIE)).toBeUndefined();
    expect((await agent.get('/admin')).status).toBe(303);
    // An empty or missing password is just as wrong.
    expect(
      (
        await agent
          .post('/admin/login')
          .type('form')
          .send({ _csrf: csrfOf(page.text) })
      ).status,
    ).toBe(401);
  });

  it('the right password opens the dashboard with an HttpOnly, SameSite=Strict, expiring session cookie', async () => {
    const agent = request.agent(ctx.app);
    const page = await agent.get('/admin/login');
    const res = await agent
      .post('/admin/login')
      .type('form')
      .send({ _csrf: csrfOf(page.text), username: 'admin', password: ADMIN_PASSWORD });
    expect(res.status).toBe(303);
    expect(res.headers.location).toBe('/admin');
    const cookie = setCookie(res, SESSION_COOKIE)!;
    expect(cookie).toMatch(/; HttpOnly/);
    expect(cookie).toMatch(/; SameSite=Strict/);
    expect(cookie).toMatch(/; Path=\/admin/);
    expect(cookie).toMatch(/; Max-Age=28800/);
    expect(cookie).not.toMatch(/; Secure/); // plain HTTP here; see the proxy test below
    const dashboard = await agent.get('/admin');
    expect(dashboard.status).toBe(200);
    expect(dashboard.text).toContain('<h1 class="h3 mb-1">Dashboard</h1>');
    expect(dashboard.text).toMatch(/id="operator-name"[^>]*><span class="visually-hidden">Signed in as <\/span>admin<\/a>/);
    // Signed in, the login page forwards to the console.
    expect((await agent.get('/admin/login')).headers.location).toBe('/admin');
  });

  it('honours a same-site relative `next` and nothing else', async () => {
    const loginTo = async (next: string) => {
      const agent = request.agent(ctx.app);
      const page = await agent.get(`/admin/login?next=${encodeURIComponent(next)}`);
      const res = await agent
        .post(`/admin/login?next=${encodeURIComponent(next)}`)
        .type('form')
        .send({ _csrf: csrfOf(page.text), username: 'admin', password: ADMIN_PASSWORD });
      expect(res.status).toBe(303);
      return res.headers.location;
    };
    expect(await loginTo('/admin/orders?status=paid')).toBe('/admin/orders?status=paid');
    expect(await loginTo('/admin/inbox')).toBe('/admin/inbox');
    for (const evil of [
      '//evil.example/admin',
      'https://evil.example/admin',
      '/\\evil.example',
      '/admin/../evil',
      'javascript:alert(1)',
      '/adminx',
      '/admin@evil.example',
      ' /admin',
      '/admin/login',
    ]) {
      expect(await loginTo(evil), evil).toBe('/admin');
    }
    expect(safeNext(undefined)).toBe('/admin');
    expect(safeNext(['/admin/orders'])).toBe('/admin');
  });

  it('rejects tampered, foreign and garbage session cookies', async () => {
    const agent = await signedInAgent(ctx.app);
    const good = (agent as unknown as { jar: { getCookie(name: string, access: unknown): { value: string } } }).jar.getCookie(SESSION_COOKIE, {
      path: '/admin',
      domain: '127.0.0.1',
      secure: false,
      script: false,
    })?.value;
    expect(good).toMatch(/^[\w-]+\.[\w-]+$/);
    const [body, sig] = good!.split('.');
    const payload = JSON.parse(Buffer.from(body!, 'base64url').toString());
    const forged = Buffer.from(JSON.stringify({ ...payload, uid: payload.uid + 1, exp: payload.exp + 86_400_000 })).toString('base64url');
    const foreignKey = createHmac('sha256', 'some-other-secret').update(forged).digest('base64url');
    for (const value of [`${forged}.${sig}`, `${forged}.${foreignKey}`, `${body}.${sig}x`, `${body}`, 'garbage', `${body}.${sig}.${sig}`]) {
      const res = await request(ctx.app).get('/admin').set('Cookie', `${SESSION_COOKIE}=${value}`);
      expect(res.status, value).toBe(303);
      expect(res.headers.location).toBe('/admin/login');
    }
    expect((await request(ctx.app).get('/admin').set('Cookie', `${SESSION_COOKIE}=${good}`)).status).toBe(200);
  });

  it('an expired session goes back to the login', async () => {
    const agent = await signedInAgent(ctx.app);
    expect((await agent.get('/admin/orders')).status).toBe(200);
    now += 8 * 3_600_000 - 60_000;
    expect((await agent.get('/admin/orders')).status).toBe(200);
    now += 61_000;
    const res = await agent.get('/admin/orders');
    expect(res.status).toBe(303);
    expect(res.headers.location).toBe(`/admin/login?next=${encodeURIComponent('/admin/orders')}`);
  });

  it('refuses every POST without the CSRF token with 403, signed in or not', async () => {
    const orderNo = await createOrder(ctx);
    const agent = await signedInAgent(ctx.app);
    for (const path of [`/admin/orders/${orderNo}/close`, `/admin/orders/${orderNo}/resend`, '/admin/inbox/1/review', '/admin/logout', '/admin/login']) {
      const res = await agent.post(path).type('form').send({ note: 'x', password: ADMIN_PASSWORD });
      expect(res.status, path).toBe(403);
      const forged = await agent
        .post(path)
        .type('form')
        .send({ _csrf: 'A'.repeat(43), note: 'x', password: ADMIN_PASSWORD });
      expect(forged.status, path).toBe(403);
      expect((await request(ctx.app).post(path).type('form').send({ note: 'x' })).status, path).toBe(403);
    }
    expect((await orderRow(ctx, orderNo)).status).toBe('pending');
    // The 403 is a console page, and the session still works.
    const res = await agent.post(`/admin/orders/${orderNo}/close`).type('form').send({});
    expect(res.text).toContain('The form has expired or did not come from this console');
    expect((await agent.get('/admin')).status).toBe(200);
  });

  it('logout (POST with CSRF) ends the session in the browser', async () => {
    const agent = await signedInAgent(ctx.app);
    const page = await agent.get('/admin');
    const res = await agent
      .post('/admin/logout')
      .type('form')
      .send({ _csrf: csrfOf(page.text) });
    expect(res.status).toBe(303);
    expect(res.headers.location).toBe('/admin/login?flash=logged_out');
    expect(setCookie(res, SESSION_COOKIE)).toMatch(/^pcs_admin=;.*Expires=Thu, 01 Jan 1970/);
    const after = await agent.get('/admin');
    expect(after.status).toBe(303);
    expect((await agent.get('/admin/login?flash=logged_out')).text).toContain('You have been signed out.');
  });

  it('the login page is in Chinese with ?lang=zh-CN or Accept-Language', async () => {
    const zh = await request(ctx.app).get('/admin/login?lang=zh-CN');
    expect(zh.text).toContain('<html lang="zh-CN">');
    expect(zh.text).toContain('用户名');
    const header = await request(ctx.app).get('/admin/login').set('Accept-Language', 'zh-CN,zh;q=0.9');
    expect(header.text).toContain('运营控制台');
    const agent = request.agent(ctx.app);
    const page = await agent.get('/admin/login?lang=zh-CN');
    const wrong = await agent
      .post('/admin/login')
      .type('form')
      .send({ _csrf: csrfOf(page.text), username: 'admin', password: 'nope' });
    expect(wrong.text).toContain('用户名或密码不正确。');
  });
});

describe.each(ENGINES)('console login limits on %s', (engine) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(engine, { env: { TRUST_PROXY: 'true' } });
  });
  afterAll(() => ctx.close());

  it('marks cookies Secure when the request came over HTTPS (through a trusted proxy)', async () => {
    const agent = request.agent(ctx.app);
    const page = await agent.get('/admin/login').set('X-Forwarded-Proto', 'https').set('X-Forwarded-For', '203.0.113.50');
    expect(setCookie(page, 'pcs_csrf')).toMatch(/; Secure/);
    const res = await request(ctx.app)
      .post('/admin/login')
      .set('X-Forwarded-Proto', 'https')
      .set('X-Forwarded-For', '203.0.113.50')
      .set('Cookie', setCookie(page, 'pcs_csrf')!.split(';')[0]!)
      .type('form')
      .send({ _csrf: csrfOf(page.text), username: 'admin', password: ADMIN_PASSWORD });
    expect(res.status).toBe(303);
    expect(setCookie(res, SESSION_COOKIE)).toMatch(/; HttpOnly; Secure; SameSite=Strict/);
  });

  it('allows 10 failed attempts per address per 15 minutes, then answers 429 (successes do not count)', async () => {
    const attempt = async (ip: string, password: string) => {
      const agent = request.agent(ctx.app);
      const page = await agent.get('/admin/login').set('X-Forwarded-For', ip);
      return agent
        .post('/admin/login')
        .set('X-Forwarded-For', ip)
        .type('form')
        .send({ _csrf: csrfOf(page.text), username: 'admin', password });
    };
    const ip = '198.51.100.7';
    for (let i = 0; i < 9; i++) expect((await attempt(ip, `wrong-${i}`)).status).toBe(401);
    expect((await attempt(ip, ADMIN_PASSWORD)).status).toBe(303);
    expect((await attempt(ip, 'wrong-10')).status).toBe(401);
    const limited = await attempt(ip, 'wrong-11');
    expect(limited.status).toBe(429);
    expect(limited.headers['content-type']).toMatch(/^text\/html/);
    expect(limited.text).toContain('Too many failed sign-in attempts');
    expect(limited.headers['retry-after']).toBeDefined();
    expect(limited.headers.ratelimit).toMatch(/limit=10/);
    // Even the right password waits now; another address is unaffected.
    expect((await attempt(ip, ADMIN_PASSWORD)).status).toBe(429);
    expect((await attempt('198.51.100.8', ADMIN_PASSWORD)).status).toBe(303);
  });
});

describe('console session codec', () => {
  it('names the account and its session epoch; changing SESSION_SECRET ends every session', async () => {
    const clock = () => new Date();
    const secret = 's'.repeat(40);
    const account = { id: 7, sessionEpoch: 3 };
    const operators = { findById: async () => null };
    const a = createAdminAuth({ secret, clock, operators });
    const cookies: string[] = [];
    const res = { cookie: (_n: string, v: string) => cookies.push(v) } as never;
    a.signIn({ secure: false } as never, res, account);
    const header = { headers: { cookie: `${SESSION_COOKIE}=${cookies[0]}` } } as never;
    expect(a.current(header)).toMatchObject({ uid: 7, epoch: 3 });
    expect(createAdminAuth({ secret: 't'.repeat(40), clock, operators }).current(header)).toBeNull();
    // A signed cookie opens nothing once its account is gone.
    expect(await a.load(header)).toBeNull();
  });
});
