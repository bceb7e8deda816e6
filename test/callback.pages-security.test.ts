import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestContext, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';
import { createOrder, expectUnchanged, gatewayParams, html, orderRow, query, resultKind, visit } from './helpers/pages.ts';

/** DESIGN A5/A8 result pages: escaping and CSP, zh-CN/English selection, CALLBACK_IP_ALLOWLIST_GENERIC. */

const XSS = '<script>alert(1)</script><img src=x onerror=alert(1)>';
const XSS_ESCAPED = '&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;';

function expectNoRawMarkup(page: string): void {
  expect(page).not.toMatch(/<script/i);
  expect(page).not.toMatch(/<img/i);
  expect(page).not.toMatch(/<b>/i);
  expect(page).not.toContain('onerror=alert(1)>');
}

describe.each(ENGINES)('result pages on %s', (engine) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(engine);
  });
  afterAll(() => ctx?.close());

  describe('escaping and Content-Security-Policy', () => {
    it('an order subject with markup is shown escaped, never as a tag', async () => {
      const orderNo = await createOrder(ctx, { subject: XSS, callback_url: 'https://shop.example/r?q="><script>alert(1)</script>' });
      const res = await visit(ctx, 'GET', '/callback', gatewayParams(orderNo));
      const page = html(res, 200);
      expect(resultKind(page)).toBe('success');
      expect(page).toContain(XSS_ESCAPED);
      expectNoRawMarkup(page);
      const csp = res.headers['content-security-policy'] as string;
      expect(csp).toMatch(/default-src 'self'/);
      expect(csp).toMatch(/script-src 'self'(;|$)/);
      expect(csp).toMatch(/object-src 'none'/);
      expect(csp).not.toMatch(/unsafe-inline|unsafe-eval/);
      expect(res.headers['x-content-type-options']).toBe('nosniff');
    });

    it.each(['GET', 'POST'] as const)('%s callback parameters carrying markup render escaped', async (method) => {
      const orderNo = await createOrder(ctx);
      const verified = html(await visit(ctx, method, '/callback', gatewayParams(orderNo, { transaction_id: '<b>T1</b><script>x</script>' })), 200);
      expect(resultKind(verified)).toBe('success');
      expectNoRawMarkup(verified);
      const forged = `order_no=${encodeURIComponent(XSS)}&sign=${encodeURIComponent(XSS)}&${encodeURIComponent('<img src=x onerror=alert(1)>')}=1&lang=${encodeURIComponent(XSS)}`;
      const page = html(await visit(ctx, method, '/callback', forged), 400);
      expect(resultKind(page)).toBe('rejected');
      expectNoRawMarkup(page);
      expect(page).toContain('&lt;img src=x onerror=alert(1)&gt;');
    });
  });

  describe('language', () => {
    it('?lang=zh-CN gives Chinese and sets the lang cookie; the cookie alone then gives Chinese', async () => {
      const orderNo = await createOrder(ctx);
      const params = gatewayParams(orderNo);
      const res = await request(ctx.app).get(`/callback?${query(params)}&lang=zh-CN`);
      const zh = html(res, 200);
      expect(resultKind(zh)).toBe('success');
      expect(zh).toContain('<html lang="zh-CN">');
      expect(zh).toContain('支付成功');
      expect(zh).toContain('订单号');
      expect(zh).toContain('已支付');
      const cookie = (res.headers['set-cookie'] as unknown as string[]).find((c) => c.startsWith('lang='));
      expect(cookie).toMatch(/^lang=zh-CN;/);
      const again = html(await visit(ctx, 'GET', '/callback', params).set('Cookie', 'lang=zh-CN'), 200);
      expect(again).toContain('<html lang="zh-CN">');
      expect(again).toContain('支付成功');
      expect((await orderRow(ctx, orderNo)).status).toBe('paid');
    });

    it('Accept-Language: zh-CN gives Chinese; English by default and for en', async () => {
      const orderNo = await createOrder(ctx);
      const params = gatewayParams(orderNo, { status: 'failed' });
      const zh = html(await visit(ctx, 'GET', '/callback', params).set('Accept-Language', 'zh-CN,zh;q=0.9'), 200);
      expect(zh).toContain('<html lang="zh-CN">');
      expect(zh).toContain('支付失败');
      const plain = html(await visit(ctx, 'GET', '/callback', params), 200);
      expect(plain).toContain('<html lang="en">');
      expect(plain).toContain('Payment failed');
      const en = html(await visit(ctx, 'GET', '/callback', params).set('Accept-Language', 'en-US,en;q=0.9,zh;q=0.5'), 200);
      expect(en).toContain('<html lang="en">');
      const cookieWins = html(await visit(ctx, 'GET', '/callback', params).set('Accept-Language', 'zh-CN').set('Cookie', 'lang=en'), 200);
      expect(cookieWins).toContain('<html lang="en">');
    });

    it.each(['GET', 'POST'] as const)('the language switch of a %s result page leads to the same result in the other language', async (method) => {
      const orderNo = await createOrder(ctx);
      const en = html(await visit(ctx, method, '/callback', gatewayParams(orderNo)), 200);
      const switchHref = /href="([^"]*)" hreflang="zh-CN"/.exec(en)?.[1];
      expect(switchHref).toBeDefined();
      // A query-only link: the browser keeps the path of the page (POSTed to or not).
      expect(switchHref).toMatch(/^\?/);
      const target = new URL(switchHref!.replaceAll('&amp;', '&'), 'http://service.test/callback');
      const zh = html(await request(ctx.app).get(`${target.pathname}${target.search}`), 200);
      expect(resultKind(zh)).toBe('success');
      expect(zh).toContain('支付成功');
      expect(zh).toContain(orderNo);
    });

    it('a rejection page and the error page are translated too', async () => {
      const rejected = html(await request(ctx.app).get('/callback?order_no=X&sign=bad&lang=zh-CN'), 400);
      expect(rejected).toContain('支付结果无法验证');
      const missing = html(await request(ctx.app).get('/no-such-page').set('Accept', 'text/html').set('Cookie', 'lang=zh-CN'), 404);
      expect(missing).toContain('<html lang="zh-CN">');
      expect(missing).toContain('错误');
    });
  });
});

describe.each(ENGINES)('CALLBACK_IP_ALLOWLIST_GENERIC on %s', (engine) => {
  const contexts: TestContext[] = [];
  const open = async (env: Record<string, string>) => {
    const ctx = await createTestContext(engine, { env });
    contexts.push(ctx);
    return ctx;
  };
  afterAll(async () => {
    for (const ctx of contexts) await ctx.close();
  });

  const forbiddenLogs = (ctx: TestContext) => ctx.db.kysely.selectFrom('payment_logs').selectAll().where('verdict', '=', 'forbidden').orderBy('id').execute();

  it('127.0.0.1 outside 10.0.0.0/8 → /notify 403 forbidden, /callback 403 page; logged; order unchanged; X-Forwarded-For not trusted', async () => {
    const ctx = await open({ CALLBACK_IP_ALLOWLIST_GENERIC: '10.0.0.0/8' });
    const orderNo = await createOrder(ctx, { notify_url: 'https://merchant.example/n' });
    const notify = await request(ctx.app).post('/notify').type('form').send(gatewayParams(orderNo));
    expect(notify.status).toBe(403);
    expect(notify.body).toEqual({ success: false, code: 'forbidden', message: expect.any(String) });
    const page = html(await visit(ctx, 'GET', '/callback', gatewayParams(orderNo)), 403);
    expect(resultKind(page)).toBe('rejected');
    const spoofed = await visit(ctx, 'POST', '/callback', gatewayParams(orderNo)).set('X-Forwarded-For', '10.1.2.3');
    expect(spoofed.status).toBe(403);
    await expectUnchanged(ctx, orderNo);
    const logs = await forbiddenLogs(ctx);
    expect(logs.map((l) => [l.kind, l.gateway])).toEqual([
      ['notify', 'generic'],
      ['return', 'generic'],
      ['return', 'generic'],
    ]);
    for (const log of logs) expect(log.remote_ip).toMatch(/127\.0\.0\.1/);
  });

  it('an allowlist containing 127.0.0.1 lets the callback through', async () => {
    const ctx = await open({ CALLBACK_IP_ALLOWLIST_GENERIC: '10.0.0.0/8, 127.0.0.1, ::1' });
    const first = await createOrder(ctx);
    expect((await request(ctx.app).post('/notify').type('form').send(gatewayParams(first))).status).toBe(200);
    const second = await createOrder(ctx);
    expect(resultKind(html(await visit(ctx, 'GET', '/callback', gatewayParams(second)), 200))).toBe('success');
    expect(await forbiddenLogs(ctx)).toHaveLength(0);
  });

  it('with TRUST_PROXY=loopback the X-Forwarded-For client is checked', async () => {
    const ctx = await open({ CALLBACK_IP_ALLOWLIST_GENERIC: '10.0.0.0/8', TRUST_PROXY: 'loopback' });
    const orderNo = await createOrder(ctx);
    const outside = await visit(ctx, 'GET', '/callback', gatewayParams(orderNo)).set('X-Forwarded-For', '192.168.1.5');
    expect(outside.status).toBe(403);
    const direct = await request(ctx.app).post('/notify').type('form').send(gatewayParams(orderNo));
    expect(direct.status).toBe(403);
    await expectUnchanged(ctx, orderNo);
    expect((await forbiddenLogs(ctx)).map((l) => l.remote_ip)).toEqual(['192.168.1.5', expect.stringMatching(/127\.0\.0\.1/)]);

    const inside = await visit(ctx, 'GET', '/callback', gatewayParams(orderNo)).set('X-Forwarded-For', '10.20.30.40');
    expect(resultKind(html(inside, 200))).toBe('success');
    const applied = await ctx.db.kysely.selectFrom('payment_logs').selectAll().where('verdict', '=', 'applied').execute();
    expect(applied.map((l) => l.remote_ip)).toEqual(['10.20.30.40']);
    expect((await orderRow(ctx, orderNo)).status).toBe('paid');
  });
});
