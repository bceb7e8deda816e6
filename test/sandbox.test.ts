import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestContext, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';
import { attrOf, field, html, orderRow, paymentLogs, resultKind } from './helpers/pages.ts';

/** DESIGN A8: `GET /` demo order form and the sandbox checkout, CSRF-protected, through the real callback path. */

type Agent = ReturnType<typeof request.agent>;

const csrfTokens = (page: string) => [...page.matchAll(/name="_csrf" value="([^"]+)"/g)].map((m) => m[1]!);
const countOrders = async (ctx: TestContext) =>
  Number(
    (
      await ctx.db.kysely
        .selectFrom('orders')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .executeTakeFirstOrThrow()
    ).n,
  );

/** Opens `/` with the agent; returns the form's CSRF token. */
async function openHome(agent: Agent): Promise<string> {
  const page = html(await agent.get('/'), 200);
  const tokens = csrfTokens(page);
  expect(tokens).toHaveLength(1);
  return tokens[0]!;
}

async function createDemoOrder(agent: Agent, token: string, fields: Record<string, string> = {}): Promise<string> {
  const res = await agent
    .post('/sandbox/orders')
    .type('form')
    .send({ _csrf: token, subject: 'Demo order', amount: '9.99', currency: 'CNY', ...fields });
  expect(res.status, res.text.slice(0, 300)).toBe(303);
  const match = /^\/sandbox\/pay\/([A-Za-z0-9_-]+)$/.exec(res.headers.location as string);
  expect(match).not.toBeNull();
  return match![1]!;
}

/** Presses a checkout button and follows the 303 through /callback; returns that page. */
async function press(agent: Agent, orderNo: string, action: 'pay' | 'fail'): Promise<string> {
  const checkout = html(await agent.get(`/sandbox/pay/${orderNo}`), 200);
  const token = csrfTokens(checkout)[0]!;
  const res = await agent.post(`/sandbox/pay/${orderNo}`).type('form').send({ _csrf: token, action });
  expect(res.status, res.text.slice(0, 300)).toBe(303);
  const location = res.headers.location as string;
  expect(location).toMatch(/^\/callback\/sandbox\?/);
  return html(await agent.get(location), 200);
}

describe.each(ENGINES)('sandbox on %s', (engine) => {
  let ctx: TestContext;
  let agent: Agent;
  let token: string;
  beforeAll(async () => {
    ctx = await createTestContext(engine);
    agent = request.agent(ctx.app);
    token = await openHome(agent);
  });
  afterAll(() => ctx?.close());

  it('GET / renders the demo form with a hidden _csrf and sets the pcs_csrf cookie', async () => {
    const res = await request(ctx.app).get('/');
    const page = html(res, 200);
    expect(page).toMatch(/<form method="post" action="\/sandbox\/orders"/);
    expect(page).toMatch(/<input type="hidden" name="_csrf" value="[A-Za-z0-9_-]{20,}">/);
    for (const id of ['subject', 'amount', 'currency', 'create-order-button']) expect(attrOf(page, id, 'id')).toBe(id);
    const cookie = (res.headers['set-cookie'] as unknown as string[]).find((c) => c.startsWith('pcs_csrf='));
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Strict/i);
  });

  it('POST /sandbox/orders without a token, with a wrong token, or without the cookie → 403, nothing created', async () => {
    const before = await countOrders(ctx);
    const fields = { subject: 'x', amount: '1.00', currency: 'CNY' };
    expect((await agent.post('/sandbox/orders').type('form').send(fields)).status).toBe(403);
    expect(
      (
        await agent
          .post('/sandbox/orders')
          .type('form')
          .send({ ...fields, _csrf: `${token.slice(0, -2)}xx` })
      ).status,
    ).toBe(403);
    expect(
      (
        await agent
          .post('/sandbox/orders')
          .type('form')
          .send({ ...fields, _csrf: '' })
      ).status,
    ).toBe(403);
    expect(
      (
        await request(ctx.app)
          .post('/sandbox/orders')
          .type('form')
          .send({ ...fields, _csrf: token })
      ).status,
    ).toBe(403);
    const other = request.agent(ctx.app);
    await openHome(other);
    expect(
      (
        await other
          .post('/sandbox/orders')
          .type('form')
          .send({ ...fields, _csrf: token })
      ).status,
    ).toBe(403);
    expect(await countOrders(ctx)).toBe(before);
  });

  it('creates a sandbox order and shows the checkout with pay and fail buttons carrying CSRF tokens', async () => {
    const orderNo = await createDemoOrder(agent, token, { subject: 'Sandbox <tea>', amount: '12.50', currency: 'USD' });
    const order = await orderRow(ctx, orderNo);
    expect(order).toMatchObject({
      payment_method: 'sandbox',
      status: 'pending',
      currency: 'USD',
      subject: 'Sandbox <tea>',
      callback_url: null,
      notify_url: null,
    });
    expect(Number(order.amount_minor)).toBe(1250);
    const page = html(await agent.get(`/sandbox/pay/${orderNo}`), 200);
    expect(field(page, 'order_no')).toBe(orderNo);
    expect(field(page, 'amount')).toBe('12.50');
    expect(field(page, 'currency')).toBe('USD');
    expect(page).toContain('Sandbox &lt;tea&gt;');
    expect(attrOf(page, 'pay-button', 'type')).toBe('submit');
    expect(attrOf(page, 'fail-button', 'type')).toBe('submit');
    expect(attrOf(page, 'lose-button', 'type')).toBe('submit');
    expect(csrfTokens(page)).toEqual([token, token, token]);
    expect(page.match(/name="action" value="(pay|fail|lose)"/g)).toEqual([
      'name="action" value="pay"',
      'name="action" value="fail"',
      'name="action" value="lose"',
    ]);
  });

  it('pay → 303 to /callback → success page; a sandbox notify applied and the return trip a duplicate', async () => {
    const orderNo = await createDemoOrder(agent, token);
    const page = await press(agent, orderNo, 'pay');
    expect(resultKind(page)).toBe('success');
    expect(field(page, 'order_no')).toBe(orderNo);
    expect(field(page, 'amount')).toBe('9.99');
    expect(attrOf(page, 'new-order', 'href')).toBe('/');
    const order = await orderRow(ctx, orderNo);
    expect(order.status).toBe('paid');
    expect(order.transaction_id).toMatch(/^SBX/);
    const logs = await paymentLogs(ctx, orderNo);
    expect(logs.map((l) => [l.gateway, l.kind, l.verdict])).toEqual([
      ['sandbox', 'notify', 'applied'],
      ['sandbox', 'return', 'duplicate'],
    ]);
    expect(logs.every((l) => l.transaction_id === order.transaction_id)).toBe(true);
    const checkout = html(await agent.get(`/sandbox/pay/${orderNo}`), 200);
    expect(checkout).not.toContain('id="pay-button"');
    expect(checkout).toContain('This order is no longer awaiting payment.');
  });

  it('fail → failure page and the order failed; the checkout then offers no buttons (only pending orders are payable)', async () => {
    const orderNo = await createDemoOrder(agent, token);
    const failed = await press(agent, orderNo, 'fail');
    expect(resultKind(failed)).toBe('failure');
    expect(field(failed, 'status')).toBe('Failed');
    expect((await orderRow(ctx, orderNo)).status).toBe('failed');
    const checkout = html(await agent.get(`/sandbox/pay/${orderNo}`), 200);
    expect(checkout).not.toContain('id="pay-button"');
    expect((await agent.post(`/sandbox/pay/${orderNo}`).type('form').send({ _csrf: token, action: 'pay' })).status).toBe(409);
    expect((await orderRow(ctx, orderNo)).status).toBe('failed');
    const verdicts = (await paymentLogs(ctx, orderNo)).map((l) => `${l.gateway}/${l.kind}/${l.verdict}`);
    expect(verdicts).toEqual(['sandbox/notify/applied', 'sandbox/return/duplicate']);
  });

  it('pay without a CSRF token → 403, order unchanged; an unknown order → 404', async () => {
    const orderNo = await createDemoOrder(agent, token);
    expect((await agent.post(`/sandbox/pay/${orderNo}`).type('form').send({ action: 'pay' })).status).toBe(403);
    expect((await request(ctx.app).post(`/sandbox/pay/${orderNo}`).type('form').send({ action: 'pay', _csrf: token })).status).toBe(403);
    expect((await orderRow(ctx, orderNo)).status).toBe('pending');
    expect(await paymentLogs(ctx, orderNo)).toHaveLength(0);
    expect((await agent.get('/sandbox/pay/NO_SUCH_ORDER').set('Accept', 'text/html')).status).toBe(404);
    expect((await agent.post(`/sandbox/pay/${orderNo}`).type('form').send({ action: 'steal', _csrf: token })).status).toBe(400);
  });

  it('cannot pay or even show an order that was not created for the sandbox', async () => {
    await ctx.api('post', '/api/orders').send({ order_no: 'REAL-ORDER-1', amount: '99.00' });
    expect((await agent.get('/sandbox/pay/REAL-ORDER-1').set('Accept', 'text/html')).status).toBe(404);
    expect((await agent.post('/sandbox/pay/REAL-ORDER-1').type('form').send({ action: 'pay', _csrf: token })).status).toBe(404);
    expect((await orderRow(ctx, 'REAL-ORDER-1')).status).toBe('pending');
    expect(await paymentLogs(ctx, 'REAL-ORDER-1')).toHaveLength(0);
  });

  it.each([
    { name: 'not a number', amount: 'abc', currency: 'CNY' },
    { name: 'zero', amount: '0', currency: 'CNY' },
    { name: 'too many decimals for JPY', amount: '1.5', currency: 'JPY' },
    { name: 'an unknown currency', amount: '1.00', currency: 'XYZ' },
  ])('an invalid demo form ($name) → 400 HTML error page, nothing created', async ({ amount, currency }) => {
    const before = await countOrders(ctx);
    const res = await agent.post('/sandbox/orders').type('form').set('Accept', 'text/html,application/xhtml+xml').send({ _csrf: token, amount, currency });
    const page = html(res, 400);
    expect(page).toContain('validation_failed');
    expect(page).toMatch(/<html lang="en">/);
    expect(await countOrders(ctx)).toBe(before);
  });
});

describe.each(ENGINES)('sandbox in production on %s', (engine) => {
  const contexts: TestContext[] = [];
  afterAll(async () => {
    for (const ctx of contexts) await ctx.close();
  });

  it('is off without SANDBOX_ENABLED: GET /, /sandbox/pay/x and POST /sandbox/orders → 404', async () => {
    const ctx = await createTestContext(engine, { env: { NODE_ENV: 'production', METRICS_TOKEN: 'metrics-token-0123456789', SANDBOX_ENABLED: undefined } });
    contexts.push(ctx);
    expect(ctx.config.sandboxEnabled).toBe(false);
    expect((await request(ctx.app).get('/').set('Accept', 'text/html')).status).toBe(404);
    expect((await request(ctx.app).get('/sandbox/pay/x')).status).toBe(404);
    expect((await request(ctx.app).post('/sandbox/orders').type('form').send({ amount: '1.00' })).status).toBe(404);
    expect(await countOrders(ctx)).toBe(0);
  });

  it('works with SANDBOX_ENABLED=true', async () => {
    const ctx = await createTestContext(engine, { env: { NODE_ENV: 'production', METRICS_TOKEN: 'metrics-token-0123456789', SANDBOX_ENABLED: 'true' } });
    contexts.push(ctx);
    const agent = request.agent(ctx.app);
    const token = await openHome(agent);
    const orderNo = await createDemoOrder(agent, token);
    expect(resultKind(await press(agent, orderNo, 'pay'))).toBe('success');
    expect((await orderRow(ctx, orderNo)).status).toBe('paid');
  });
});
