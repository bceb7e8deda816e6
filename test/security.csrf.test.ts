import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SESSION_COOKIE } from '../src/admin/admin-session.ts';
import { ENGINES } from './helpers/engines.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';
import { ADMIN_PASSWORD, csrfOf, ensureOperator, setCookie } from './helpers/admin.ts';
import { createOrder, orderRow } from './helpers/pages.ts';

const CSRF_COOKIE = 'pcs_csrf';
const valueOf = (header: string | undefined) => header?.split(';')[0]!.split('=').slice(1).join('=');

/** A visitor's CSRF pair: the seed cookie a page set and the token of its form. */
async function anonymousPair(ctx: TestContext, path: string) {
  const page = await request(ctx.app).get(path);
  expect(page.status).toBe(200);
  return { cookie: valueOf(setCookie(page, CSRF_COOKIE))!, token: csrfOf(page.text) };
}

/** Signs in by hand: the session cookie, the CSRF seed cookie of the login page, and a console page's token. */
async function signIn(ctx: TestContext, username: string) {
  await ensureOperator(ctx.app, username);
  const login = await anonymousPair(ctx, '/admin/login');
  const res = await request(ctx.app)
    .post('/admin/login')
    .set('Cookie', `${CSRF_COOKIE}=${login.cookie}`)
    .type('form')
    .send({ _csrf: login.token, username, password: ADMIN_PASSWORD });
  expect(res.status).toBe(303);
  const session = valueOf(setCookie(res, SESSION_COOKIE))!;
  const cookies = `${SESSION_COOKIE}=${session}; ${CSRF_COOKIE}=${login.cookie}`;
  const page = await request(ctx.app).get('/admin/orders').set('Cookie', cookies);
  expect(page.status).toBe(200);
  return { session, csrfCookie: login.cookie, cookies, token: csrfOf(page.text), loginToken: login.token };
}

describe.each(ENGINES)('console CSRF tokens bound to the session on %s', (engine) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(engine);
  });
  afterAll(() => ctx.close());

  const close = (orderNo: string, cookies: string, token: string) =>
    request(ctx.app).post(`/admin/orders/${orderNo}/close`).set('Cookie', cookies).type('form').send({ _csrf: token });

  it('a planted (cookie, token) pair of an anonymous visitor does not let the operator close an order', async () => {
    const orderNo = await createOrder(ctx);
    const victim = await signIn(ctx, 'Alice');
    for (const path of ['/admin/login', '/']) {
      const planted = await anonymousPair(ctx, path);
      const res = await close(orderNo, `${SESSION_COOKIE}=${victim.session}; ${CSRF_COOKIE}=${planted.cookie}`, planted.token);
      expect(res.status, path).toBe(403);
    }
    expect((await orderRow(ctx, orderNo)).status).toBe('pending');
  });

  it("another operator's session token (with that operator's CSRF cookie) does not work with the victim's session", async () => {
    const orderNo = await createOrder(ctx);
    const victim = await signIn(ctx, 'Alice');
    const attacker = await signIn(ctx, 'Mallory');
    expect(attacker.token).not.toBe(victim.token);
    for (const cookie of [attacker.csrfCookie, victim.csrfCookie]) {
      const res = await close(orderNo, `${SESSION_COOKIE}=${victim.session}; ${CSRF_COOKIE}=${cookie}`, attacker.token);
      expect(res.status).toBe(403);
    }
    // The victim's own login-form token (same seed cookie, before the session existed) is no console token either.
    expect((await close(orderNo, victim.cookies, victim.loginToken)).status).toBe(403);
    expect((await orderRow(ctx, orderNo)).status).toBe('pending');
  });

  it('a token of one session never validates for the next one of the same browser', async () => {
    const orderNo = await createOrder(ctx);
    const first = await signIn(ctx, 'Alice');
    const second = await signIn(ctx, 'Alice');
    expect((await close(orderNo, `${SESSION_COOKIE}=${second.session}; ${CSRF_COOKIE}=${first.csrfCookie}`, first.token)).status).toBe(403);
    expect((await orderRow(ctx, orderNo)).status).toBe('pending');
  });

  it('the session token works without the CSRF cookie, and the legitimate close goes through', async () => {
    const orderNo = await createOrder(ctx);
    const victim = await signIn(ctx, 'Alice');
    const res = await close(orderNo, `${SESSION_COOKIE}=${victim.session}`, victim.token);
    expect(res.status).toBe(303);
    expect(res.headers.location).toBe(`/admin/orders/${orderNo}?flash=closed`);
    expect((await orderRow(ctx, orderNo)).status).toBe('closed');
  });

  it('a signed-in operator cannot be made to post the login form with a planted pair', async () => {
    const victim = await signIn(ctx, 'Alice');
    const planted = await anonymousPair(ctx, '/admin/login');
    const res = await request(ctx.app)
      .post('/admin/login')
      .set('Cookie', `${SESSION_COOKIE}=${victim.session}; ${CSRF_COOKIE}=${planted.cookie}`)
      .type('form')
      .send({ _csrf: planted.token, username: 'Mallory', password: ADMIN_PASSWORD });
    expect(res.status).toBe(403);
    expect(setCookie(res, SESSION_COOKIE)).toBeUndefined();
  });

  it('logout needs the session token too', async () => {
    const victim = await signIn(ctx, 'Alice');
    const planted = await anonymousPair(ctx, '/admin/login');
    const forged = await request(ctx.app)
      .post('/admin/logout')
      .set('Cookie', `${SESSION_COOKIE}=${victim.session}; ${CSRF_COOKIE}=${planted.cookie}`)
      .type('form')
      .send({ _csrf: planted.token });
    expect(forged.status).toBe(403);
    const own = await request(ctx.app).post('/admin/logout').set('Cookie', victim.cookies).type('form').send({ _csrf: victim.token });
    expect(own.status).toBe(303);
  });
});
