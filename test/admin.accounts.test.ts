import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SESSION_COOKIE } from '../src/admin/admin-session.ts';
import { createOperatorService } from '../src/operators/operator.service.ts';
import { ADMIN_PASSWORD, consolePage, csrfOf, ensureOperator, postLogin, setCookie, signedInAgent } from './helpers/admin.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';
import { createOrder, orderRow } from './helpers/pages.ts';

/** Console accounts: per-user sign-in, lockout, disabled and reset accounts, one-time passwords, own password and sessions. */
describe.each(ENGINES)('console accounts on %s', (engine) => {
  let ctx: TestContext;
  let now = Date.parse('2026-05-01T09:00:00.000Z');
  const clock = () => new Date(now);
  let operators: ReturnType<typeof createOperatorService>;
  const cli = { operator: 'cli' };
  beforeAll(async () => {
    // Every attempt below comes from its own address, so the per-address limit never hides the per-account lock.
    ctx = await createTestContext(engine, { clock, env: { TRUST_PROXY: 'true' } });
    operators = createOperatorService({ db: ctx.db, clock });
  });
  afterAll(() => ctx.close());

  let ipCount = 0;
  const attempt = async (username: string, password: string) => {
    const ip = `198.51.100.${++ipCount % 250}`;
    const agent = request.agent(ctx.app);
    const page = await agent.get('/admin/login').set('X-Forwarded-For', ip);
    const res = await agent
      .post('/admin/login')
      .set('X-Forwarded-For', ip)
      .type('form')
      .send({ _csrf: csrfOf(page.text), username, password });
    return { agent, res, ip };
  };
  const loginRows = (actor: string) =>
    ctx.db.kysely.selectFrom('audit_log').selectAll().where('actor', '=', actor).where('action', 'like', 'login.%').orderBy('id').execute();
  const errorOf = (html: string) => /id="login-error" data-error="([a-z_]+)">([^<]*)</.exec(html)?.slice(1);

  it('answers an unknown user, a wrong password and a disabled account alike, and audits each try without the password', async () => {
    await ensureOperator(ctx.app, 'wendy', 'operator');
    await ensureOperator(ctx.app, 'dave', 'viewer');
    await operators.disable('dave', cli);
    const wrong = await attempt('wendy', 'not-her-password-1');
    const unknown = await attempt('nobody-here', 'not-her-password-2');
    const disabled = await attempt('dave', ADMIN_PASSWORD);
    for (const { res } of [wrong, unknown, disabled]) {
      expect(res.status).toBe(401);
      expect(errorOf(res.text)).toEqual(['wrong_credentials', 'The username or password is not correct.']);
      expect(setCookie(res, SESSION_COOKIE)).toBeUndefined();
    }
    expect((await loginRows('wendy')).map((r) => [r.action, r.target, r.remote_ip, JSON.parse(r.new_value!).reason])).toEqual([
      ['login.failure', 'operator:wendy', wrong.ip, 'wrong_password'],
    ]);
    expect((await loginRows('nobody-here')).map((r) => [r.action, JSON.parse(r.new_value!).reason])).toEqual([['login.failure', 'unknown_user']]);
    expect((await loginRows('dave')).map((r) => [r.action, JSON.parse(r.new_value!).reason])).toEqual([['login.failure', 'disabled']]);

    const ok = await attempt('wendy', ADMIN_PASSWORD);
    expect(ok.res.status).toBe(303);
    expect((await loginRows('wendy')).map((r) => [r.action, r.remote_ip])).toEqual([
      ['login.failure', wrong.ip],
      ['login.success', ok.ip],
    ]);
    const everything = JSON.stringify(await ctx.db.kysely.selectFrom('audit_log').selectAll().execute());
    for (const secret of [ADMIN_PASSWORD, 'not-her-password-1', 'not-her-password-2']) expect(everything).not.toContain(secret);
  });

  it('locks an account for 15 minutes after 10 failures, whatever the addresses; another account is unaffected', async () => {
    await ensureOperator(ctx.app, 'lena', 'operator');
    await ensureOperator(ctx.app, 'omar', 'operator');
    for (let i = 1; i <= 9; i++) expect((await attempt('lena', `wrong-${i}-password`)).res.status).toBe(401);
    const tenth = await attempt('lena', 'wrong-10-password');
    expect(tenth.res.status).toBe(423);
    expect(errorOf(tenth.res.text)).toEqual(['locked', 'This account is locked for 15 minutes after too many failed sign-ins. Try again later.']);
    // Locked: even the right password is refused; omar signs in as usual.
    expect((await attempt('lena', ADMIN_PASSWORD)).res.status).toBe(423);
    expect((await attempt('omar', ADMIN_PASSWORD)).res.status).toBe(303);
    now += 15 * 60_000 - 1000;
    expect((await attempt('lena', ADMIN_PASSWORD)).res.status).toBe(423);
    now += 1000;
    expect((await attempt('lena', ADMIN_PASSWORD)).res.status).toBe(303);
    const actions = (await loginRows('lena')).map((r) => r.action);
    expect(actions.filter((a) => a === 'login.failure')).toHaveLength(10);
    expect(actions.slice(10)).toEqual(['login.locked', 'login.locked', 'login.locked', 'login.success']);
    // The success started the count again: one more failure does not lock.
    expect((await attempt('lena', 'wrong-again-password')).res.status).toBe(401);
    expect((await attempt('lena', ADMIN_PASSWORD)).res.status).toBe(303);
  });

  it("ends a disabled user's sessions at once", async () => {
    const agent = await signedInAgent(ctx.app, 'dora');
    expect((await agent.get('/admin')).status).toBe(200);
    expect(await operators.disable('dora', cli)).toBe(true);
    const after = await agent.get('/admin/orders');
    expect(after.status).toBe(303);
    expect(after.headers.location).toBe(`/admin/login?next=${encodeURIComponent('/admin/orders')}`);
    expect(setCookie(after, SESSION_COOKIE)).toMatch(/^pcs_admin=;/);
    expect((await attempt('dora', ADMIN_PASSWORD)).res.status).toBe(401);
  });

  it('a reset ends sessions; its one-time password opens only the account page until the user has chosen a password', async () => {
    const old = await signedInAgent(ctx.app, 'rick');
    const { password } = await operators.resetPassword('rick', cli);
    expect(password).toMatch(/^[A-Za-z0-9]{20}$/);
    expect((await old.get('/admin')).status).toBe(303);
    expect((await attempt('rick', ADMIN_PASSWORD)).res.status).toBe(401);

    const { agent, res } = await postLogin(ctx.app, 'rick', password, '/admin/login?next=%2Fadmin%2Forders');
    expect(res.status).toBe(303);
    expect(res.headers.location).toBe('/admin/account');
    const orderNo = await createOrder(ctx);
    for (const path of ['/admin', '/admin/orders', `/admin/orders/${orderNo}`, '/admin/settings']) {
      const blocked = await agent.get(path);
      expect([path, blocked.status, blocked.headers.location]).toEqual([path, 303, '/admin/account']);
    }
    const { html, csrf } = await consolePage(agent, '/admin/account');
    expect(html).toContain('id="must-change"');
    expect(html).not.toContain('id="sessions-form"');
    const close = await agent.post(`/admin/orders/${orderNo}/close`).type('form').send({ _csrf: csrf });
    expect(close.headers.location).toBe('/admin/account');
    expect((await orderRow(ctx, orderNo)).status).toBe('pending');

    const change = (body: Record<string, string>) =>
      agent
        .post('/admin/account/password')
        .type('form')
        .send({ _csrf: csrf, ...body });
    const errorOfPage = (text: string) => /id="password-error" data-error="([a-z_]+)"/.exec(text)?.[1];
    const fresh = 'saffron-kettle-harbour-42';
    expect(errorOfPage((await change({ current_password: 'nope-nope-nope', new_password: fresh, confirm_password: fresh })).text)).toBe('wrong_current');
    expect(errorOfPage((await change({ current_password: password, new_password: fresh, confirm_password: `${fresh}x` })).text)).toBe('mismatch');
    const weak = await change({ current_password: password, new_password: 'Password2024', confirm_password: 'Password2024' });
    expect([weak.status, errorOfPage(weak.text)]).toEqual([400, 'weak']);
    expect(weak.text).toContain('must not be a commonly used password');
    expect(errorOfPage((await change({ current_password: password, new_password: password, confirm_password: password })).text)).toBe('same');

    const done = await change({ current_password: password, new_password: fresh, confirm_password: fresh });
    expect(done.status).toBe(303);
    expect(done.headers.location).toBe('/admin?flash=password_changed');
    expect((await agent.get('/admin')).status).toBe(200);
    expect((await attempt('rick', password)).res.status).toBe(401);
    expect((await attempt('rick', fresh)).res.headers.location).toBe('/admin');
    const audit = await ctx.db.kysely
      .selectFrom('audit_log')
      .select(['actor', 'action'])
      .where('target', '=', 'operator:rick')
      .where('action', 'like', 'operator.%')
      .orderBy('id')
      .execute();
    expect(audit).toEqual([
      { actor: 'test', action: 'operator.create' },
      { actor: 'cli', action: 'operator.reset_password' },
      { actor: 'rick', action: 'operator.password_change' },
    ]);
  });

  it("changing one's password ends the other sessions and keeps this one", async () => {
    const here = await signedInAgent(ctx.app, 'paula');
    const there = await signedInAgent(ctx.app, 'paula');
    const { csrf } = await consolePage(here, '/admin/account');
    const fresh = 'quartz-lantern-meadow-9';
    const res = await here
      .post('/admin/account/password')
      .type('form')
      .send({ _csrf: csrf, current_password: ADMIN_PASSWORD, new_password: fresh, confirm_password: fresh });
    expect(res.headers.location).toBe('/admin/account?flash=password_changed');
    expect((await here.get('/admin/account?flash=password_changed')).text).toContain('Your password was changed.');
    expect((await there.get('/admin')).status).toBe(303);
  });

  it('"sign out my other sessions" ends the others; this session and its forms keep working', async () => {
    const here = await signedInAgent(ctx.app, 'sofia');
    const there = await signedInAgent(ctx.app, 'sofia');
    const elsewhere = await signedInAgent(ctx.app, 'omar');
    const { csrf } = await consolePage(here, '/admin/account');
    const res = await here.post('/admin/account/sessions').type('form').send({ _csrf: csrf });
    expect(res.status).toBe(303);
    expect(res.headers.location).toBe('/admin/account?flash=sessions_ended');
    expect(setCookie(res, SESSION_COOKIE)).toMatch(/; Max-Age=\d+/);
    expect((await here.get('/admin')).status).toBe(200);
    expect((await there.get('/admin')).status).toBe(303);
    expect((await elsewhere.get('/admin')).status).toBe(200);
    // Same session id: the token of the page loaded before still passes.
    const again = await here.post('/admin/account/sessions').type('form').send({ _csrf: csrf });
    expect(again.headers.location).toBe('/admin/account?flash=sessions_ended');
    expect((await here.get('/admin')).status).toBe(200);
  });

  it('shows the signed-in user and role, linking to the account page', async () => {
    await ensureOperator(ctx.app, 'vera', 'viewer');
    const agent = await signedInAgent(ctx.app, 'vera');
    const { html } = await consolePage(agent, '/admin/account');
    expect(html).toMatch(/href="\/admin\/account" id="operator-name"/);
    expect(html).toMatch(/data-field="role">Viewer</);
    expect((await consolePage(agent, '/admin/account?lang=zh-CN')).html).toMatch(/data-field="role">查看者</);
  });
});
