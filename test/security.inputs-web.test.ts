import { request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENGINES } from './helpers/engines.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';
import { csrfOf, signedInAgent } from './helpers/admin.ts';
import { orderRow, paymentLogs, unescapeHtml } from './helpers/pages.ts';

describe.each(ENGINES)('order list time filters on %s', (engine) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(engine, { clock: () => new Date('2026-01-05T12:00:00Z') });
    expect((await ctx.api('post', '/api/orders').send({ order_no: 'T-IN-RANGE', amount: '1.00' })).status).toBe(201);
  });
  afterAll(() => ctx.close());

  const outOfRange = [
    ['unix seconds past year 9999', '999999999999'],
    ['the first second after 9999-12-31T23:59:59Z', '253402300800'],
    ['a zone offset that moves 9999-12-31 into year 10000', '9999-12-31T23:30:00-01:00'],
    ['a date before 1970', '1969-12-31'],
    ['a date that does not exist', '2026-02-31'],
  ];

  it.each(outOfRange)('GET /api/orders?from= %s → 400 validation_failed', async (_name, value) => {
    for (const key of ['from', 'to']) {
      const res = await ctx.api('get', `/api/orders?${key}=${encodeURIComponent(value)}`);
      expect(res.status, `${key}=${value}`).toBe(400);
      expect(res.body.code).toBe('validation_failed');
      expect(res.body.message).toMatch(new RegExp(`${key} `));
    }
  });

  it.each(outOfRange)('/query_order?action=list start_time/end_time %s → 400 validation_failed', async (_name, value) => {
    for (const key of ['start_time', 'end_time']) {
      const res = await ctx.api('get', `/query_order?action=list&${key}=${encodeURIComponent(value)}`);
      expect(res.status, `${key}=${value}`).toBe(400);
      expect(res.body.code).toBe('validation_failed');
      expect(res.body.message).toContain(key);
    }
  });

  it('says which range is accepted', async () => {
    const res = await ctx.api('get', '/api/orders?from=999999999999');
    expect(res.body.message).toMatch(/1970.*9999|253402300799/);
  });

  it('refuses from later than to (both APIs)', async () => {
    const api = await ctx.api('get', '/api/orders?from=2026-01-06&to=2026-01-05');
    expect(api.status).toBe(400);
    expect(api.body.code).toBe('validation_failed');
    expect(api.body.message).toMatch(/to .*from/);
    const legacy = await ctx.api('get', '/query_order?action=list&start_time=1767657600&end_time=1767571200');
    expect(legacy.status).toBe(400);
    expect(legacy.body.message).toMatch(/end_time .*start_time/);
  });

  it('accepts the edges of the range and a same-day window', async () => {
    expect((await ctx.api('get', '/api/orders?from=0&to=253402300799')).body.data.total).toBe(1);
    expect((await ctx.api('get', '/api/orders?from=1970-01-01&to=9999-12-31')).body.data.total).toBe(1);
    expect((await ctx.api('get', '/api/orders?from=2026-01-05&to=2026-01-05')).body.data.total).toBe(1);
    expect((await ctx.api('get', '/api/orders?from=2026-01-06')).body.data.total).toBe(0);
    expect((await ctx.api('get', '/query_order?action=list&start_time=1767571200&end_time=1767657600')).body.data.total).toBe(1);
  });

  it('the console order filters mark an out-of-range or inverted date and list nothing', async () => {
    const agent = await signedInAgent(ctx.app);
    for (const query of ['from=999999999999', 'to=10000-01-01', 'from=1969-12-31', 'from=2026-01-06&to=2026-01-05', 'q=T-IN&from=999999999999']) {
      const res = await agent.get(`/admin/orders?${query}`);
      expect(res.status, query).toBe(200);
      expect(res.text, query).toMatch(/is-invalid/);
      expect(res.text, query).not.toContain('T-IN-RANGE');
    }
    const ok = await agent.get('/admin/orders?from=2026-01-05&to=2026-01-05');
    expect(ok.text).toContain('T-IN-RANGE');
    expect(ok.text).not.toMatch(/is-invalid/);
  });
});

/** GET `path` byte for byte (no client-side URL normalisation) from a listening app. */
function rawGet(server: Server, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; location?: string }> {
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, headers: { Accept: 'text/html', ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString('utf8'), location: res.headers.location }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Every href/action/src of a page that is protocol-relative (`//x`, `/\x`, `\x`) or leads to the attacker's host. */
function foreignLinks(html: string, pageUrl: string): string[] {
  return [...html.matchAll(/\b(?:href|action|src|formaction)="([^"]*)"/g)]
    .map((m) => unescapeHtml(m[1]!))
    .filter((link) => /^\s*(\/[/\\]|\\)/.test(link) || /evil/i.test(new URL(link, pageUrl).host));
}

/** The page's language switch (the link with hreflang) resolved against the page's URL. */
function languageSwitch(html: string, pageUrl: string): URL {
  const href = /<a [^>]*href="([^"]*)"[^>]*hreflang=/.exec(html)?.[1];
  expect(href, `no language switch on ${pageUrl}`).toBeDefined();
  expect(href).not.toMatch(/^\s*(\/[/\\]|\\)/);
  return new URL(unescapeHtml(href!), pageUrl);
}

const HOSTILE_PATHS = [
  '/.//evil.com',
  '//evil.com',
  '/\\evil.com',
  '/%2F%2Fevil.com',
  '/.//evil.com?lang=en',
  '/%5Cevil.com',
  '/./\\evil.com',
  '///evil.com/',
  '/admin/.//evil.com',
  '/sandbox/pay/.//evil.com',
  '/docs/.//evil.com',
  '/callback/.//evil.com',
];

describe('language switch links', () => {
  let ctx: TestContext;
  let server: Server;
  let sandboxOrder: string;
  beforeAll(async () => {
    ctx = await createTestContext('sqlite');
    server = ctx.app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const agent = request.agent(ctx.app);
    const home = await agent.get('/');
    const created = await agent
      .post('/sandbox/orders')
      .type('form')
      .send({ _csrf: csrfOf(home.text), amount: '1.00', currency: 'CNY' });
    sandboxOrder = /\/sandbox\/pay\/(.+)$/.exec(created.headers.location as string)![1]!;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await ctx.close();
  });
  const base = () => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  it.each(HOSTILE_PATHS)('GET %s: no link of the page leads off the site', async (path) => {
    for (const headers of [{}, { Cookie: 'lang=zh-CN' }] as Record<string, string>[]) {
      const res = await rawGet(server, path, headers);
      expect(res.status, `${path} ${res.status}`).toBeLessThan(500);
      if (res.location) expect(res.location).not.toMatch(/^\s*(\/[/\\]|\\|[a-z]+:)/i);
      // As a browser sees it: the host it asked, the path as sent (a backslash reads as a slash).
      const pageUrl = new URL(`${base()}${path}`).toString();
      expect(foreignLinks(res.body, pageUrl)).toEqual([]);
      if (/hreflang=/.test(res.body)) expect(languageSwitch(res.body, pageUrl).host).toBe(new URL(base()).host);
    }
  });

  it('the 404 page for /.//evil.com switches language on the same page', async () => {
    const res = await rawGet(server, '/.//evil.com');
    expect(res.status).toBe(404);
    expect(res.body).not.toContain('href="//evil.com');
    const target = languageSwitch(res.body, `${base()}/.//evil.com`);
    expect(target.host).toBe(new URL(base()).host);
    expect(target.searchParams.get('lang')).toBe('zh-CN');
  });

  it.each([
    ['home', () => '/'],
    ['sandbox checkout', () => `/sandbox/pay/${sandboxOrder}`],
    ['console login', () => '/admin/login?next=%2Fadmin%2Forders'],
    ['API docs', () => '/docs'],
    ['callback result page', () => '/callback?order_no=NOPE&status=success'],
    ['404 page', () => '/no/such/page?x=1'],
  ])('the %s keeps its path and query and swaps the language', async (_name, path) => {
    const res = await rawGet(server, path());
    const pageUrl = `${base()}${path()}`;
    const target = languageSwitch(res.body, pageUrl);
    const page = new URL(pageUrl);
    expect(target.pathname).toBe(page.pathname);
    for (const [key, value] of page.searchParams) expect(target.searchParams.get(key)).toBe(value);
    expect(target.searchParams.get('lang')).toBe('zh-CN');
    expect(foreignLinks(res.body, pageUrl)).toEqual([]);
  });

  it('console pages keep their path and drop the one-time flash', async () => {
    const agent = await signedInAgent(ctx.app);
    for (const path of ['/admin', '/admin/orders?status=paid&flash=closed', '/admin/.//evil.com', '/admin//evil.com']) {
      const res = await agent.get(path).set('Accept', 'text/html');
      if (res.status >= 300 && res.status < 400) {
        expect(res.headers.location).not.toMatch(/^\s*(\/[/\\]|[a-z]+:)/i);
        continue;
      }
      const pageUrl = `${base()}${path}`;
      const target = languageSwitch(res.text, pageUrl);
      expect(target.host).toBe(new URL(base()).host);
      expect(target.pathname).toBe(new URL(pageUrl).pathname);
      expect(target.searchParams.has('flash')).toBe(false);
      expect(foreignLinks(res.text, pageUrl)).toEqual([]);
    }
  });
});

describe.each(ENGINES)('sandbox checkout of an order that is not pending on %s', (engine) => {
  let ctx: TestContext;
  let agent: ReturnType<typeof request.agent>;
  beforeAll(async () => {
    ctx = await createTestContext(engine);
    agent = request.agent(ctx.app);
  });
  afterAll(() => ctx.close());

  async function demoOrder(): Promise<string> {
    const home = await agent.get('/');
    const res = await agent
      .post('/sandbox/orders')
      .type('form')
      .send({ _csrf: csrfOf(home.text), amount: '5.00', currency: 'CNY' });
    expect(res.status).toBe(303);
    return /\/sandbox\/pay\/(.+)$/.exec(res.headers.location as string)![1]!;
  }

  async function checkout(orderNo: string) {
    const page = await agent.get(`/sandbox/pay/${orderNo}`).set('Accept', 'text/html');
    expect(page.status).toBe(200);
    return { html: page.text, token: csrfOf((await agent.get('/')).text) };
  }

  it.each([
    ['closed', async (orderNo: string) => expect((await ctx.api('post', `/api/orders/${orderNo}/close`)).status).toBe(200)],
    [
      'paid',
      async (orderNo: string) => {
        const { token } = await checkout(orderNo);
        expect((await agent.post(`/sandbox/pay/${orderNo}`).type('form').send({ _csrf: token, action: 'pay' })).status).toBe(303);
      },
    ],
    [
      'failed',
      async (orderNo: string) => {
        const { token } = await checkout(orderNo);
        expect((await agent.post(`/sandbox/pay/${orderNo}`).type('form').send({ _csrf: token, action: 'fail' })).status).toBe(303);
      },
    ],
  ])('a %s order: the page shows its status without buttons; pay and fail answer 409 invalid_state and change nothing', async (status, makeIt) => {
    const orderNo = await demoOrder();
    await makeIt(orderNo);
    const before = await orderRow(ctx, orderNo);
    expect(before.status).toBe(status);
    const logsBefore = await paymentLogs(ctx, orderNo);

    const { html, token } = await checkout(orderNo);
    expect(html).not.toContain('id="pay-button"');
    expect(html).not.toContain('id="fail-button"');
    expect(html).toContain('This order is no longer awaiting payment.');
    expect(html).toMatch(new RegExp(`data-field="status">${status[0]!.toUpperCase()}${status.slice(1)}<`));

    for (const action of ['pay', 'fail']) {
      const json = await agent.post(`/sandbox/pay/${orderNo}`).type('form').set('Accept', 'application/json').send({ _csrf: token, action });
      expect(json.status, action).toBe(409);
      expect(json.body.code).toBe('invalid_state');
      const page = await agent.post(`/sandbox/pay/${orderNo}`).type('form').set('Accept', 'text/html').send({ _csrf: token, action });
      expect(page.status).toBe(409);
      expect(page.text).toContain('invalid_state');
    }
    const after = await orderRow(ctx, orderNo);
    expect({ status: after.status, flagged: Number(after.flagged), transaction_id: after.transaction_id }).toEqual({
      status,
      flagged: Number(before.flagged),
      transaction_id: before.transaction_id,
    });
    expect(await paymentLogs(ctx, orderNo)).toHaveLength(logsBefore.length);
  });

  it('a pending order can still be paid', async () => {
    const orderNo = await demoOrder();
    const { html, token } = await checkout(orderNo);
    expect(html).toContain('id="pay-button"');
    expect((await agent.post(`/sandbox/pay/${orderNo}`).type('form').send({ _csrf: token, action: 'pay' })).status).toBe(303);
    expect((await orderRow(ctx, orderNo)).status).toBe('paid');
  });
});
