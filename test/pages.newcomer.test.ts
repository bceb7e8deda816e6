import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestContext, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';
import { attrOf, gatewayParams, html, orderRow, paymentLogs, query, resultKind, unescapeHtml } from './helpers/pages.ts';

/** What a newcomer meets on the public pages: ways on from the home and error pages, both languages, the sandbox's answers. */

type Agent = ReturnType<typeof request.agent>;
const csrfOf = (page: string) => /name="_csrf" value="([^"]+)"/.exec(page)![1]!;
const BROWSER = 'text/html,application/xhtml+xml,*/*;q=0.8';

/** The text of the element with this id (tags removed), or undefined. */
function textOf(page: string, id: string): string | undefined {
  const match = new RegExp(`<([a-z0-9]+)[^>]*\\bid="${id}"[^>]*>([\\s\\S]*?)</\\1>`).exec(page);
  return match
    ? unescapeHtml(
        match[2]!
          .replace(/<[^>]+>/g, '')
          .replace(/\s+/g, ' ')
          .trim(),
      )
    : undefined;
}

describe.each(ENGINES)('public pages for a newcomer on %s', (engine) => {
  let ctx: TestContext;
  let agent: Agent;
  beforeAll(async () => {
    ctx = await createTestContext(engine);
    agent = request.agent(ctx.app);
  });
  afterAll(() => ctx?.close());

  it('the home page links to the console and the API reference, in both languages', async () => {
    const en = html(await request(ctx.app).get('/').set('Accept-Language', 'en'), 200);
    expect(attrOf(en, 'link-console', 'href')).toBe('/admin');
    expect(attrOf(en, 'link-docs', 'href')).toBe('/docs');
    expect(textOf(en, 'link-console')).toBe('Operator console');
    expect(textOf(en, 'link-docs')).toBe('API reference');
    const zh = html(await request(ctx.app).get('/?lang=zh-CN'), 200);
    expect(textOf(zh, 'link-console')).toBe('运营控制台');
    expect(textOf(zh, 'link-docs')).toBe('API 参考');
  });

  it('the 404 page explains itself in the page language and links home', async () => {
    const en = html(await request(ctx.app).get('/no/such/page').set('Accept', BROWSER).set('Accept-Language', 'en'), 404);
    expect(textOf(en, 'error-explanation')).toBe('There is no page at this address.');
    expect(attrOf(en, 'error-home', 'href')).toBe('/');
    expect(textOf(en, 'error-home')).toBe('Go to the home page');
    const zh = html(await request(ctx.app).get('/no/such/page?lang=zh-CN').set('Accept', BROWSER), 404);
    expect(zh).toContain('<html lang="zh-CN">');
    expect(textOf(zh, 'error-explanation')).toBe('该地址没有页面。');
    expect(textOf(zh, 'error-home')).toBe('返回首页');
    // The technical detail stays available, marked as English.
    expect(zh).toMatch(/<span lang="en" id="error-detail">No route for GET \/no\/such\/page<\/span>/);
  });

  it('the sandbox checkout of an order made for another gateway says it is not payable in the sandbox, and refuses', async () => {
    const res = await ctx.api('post', '/api/orders').send({ order_no: `REAL-${engine}-1`, amount: '99.00', payment_method: 'generic' });
    expect(res.status).toBe(201);
    const page = html(await agent.get(`/sandbox/pay/REAL-${engine}-1`).set('Accept', BROWSER), 404);
    const explanation = textOf(page, 'error-explanation');
    expect(explanation).toBe(
      `Order REAL-${engine}-1 cannot be paid in the sandbox: the sandbox pays only orders created for it (payment method "sandbox"), such as those made on the home page.`,
    );
    expect(page).not.toMatch(/not found/i);
    // An order number that does not exist gets the very same answer: the page tells nothing about which orders exist.
    const missing = html(await agent.get(`/sandbox/pay/NOPE-${engine}-1`).set('Accept', BROWSER), 404);
    expect(textOf(missing, 'error-explanation')).toBe(explanation!.replace(`REAL-${engine}-1`, `NOPE-${engine}-1`));
    expect(textOf(missing, 'error-detail')).toBe(textOf(page, 'error-detail')!.replace(`REAL-${engine}-1`, `NOPE-${engine}-1`));
    const zh = html(await agent.get(`/sandbox/pay/REAL-${engine}-1?lang=zh-CN`).set('Accept', BROWSER), 404);
    expect(textOf(zh, 'error-explanation')).toBe(
      `订单 REAL-${engine}-1 不能在沙箱中支付：沙箱只支付为它创建的订单（支付方式为 "sandbox"），例如在首页创建的订单。`,
    );
    // Still refused, nothing recorded.
    const token = csrfOf(html(await agent.get('/?lang=en'), 200));
    expect((await agent.post(`/sandbox/pay/REAL-${engine}-1`).type('form').send({ _csrf: token, action: 'pay' })).status).toBe(404);
    expect((await orderRow(ctx, `REAL-${engine}-1`)).status).toBe('pending');
    expect(await paymentLogs(ctx, `REAL-${engine}-1`)).toHaveLength(0);
  });

  it('the browser trip back from the sandbox checkout is logged as the sandbox gateway, not as generic', async () => {
    const token = csrfOf(html(await agent.get('/'), 200));
    const created = await agent.post('/sandbox/orders').type('form').send({ _csrf: token, subject: 'Tea', amount: '3.20', currency: 'CNY' });
    const orderNo = /\/sandbox\/pay\/(.+)$/.exec(created.headers.location as string)![1]!;
    const paid = await agent.post(`/sandbox/pay/${orderNo}`).type('form').send({ _csrf: token, action: 'pay' });
    expect(paid.status).toBe(303);
    const location = paid.headers.location as string;
    expect(location).toMatch(/^\/callback\/sandbox\?/);
    const page = html(await agent.get(location), 200);
    expect(resultKind(page)).toBe('success');
    const logs = await paymentLogs(ctx, orderNo);
    expect(logs.map((l) => `${l.gateway}/${l.kind}/${l.verdict}`)).toEqual(['sandbox/notify/applied', 'sandbox/return/duplicate']);
    // The sandbox's return path serves sandbox orders only: it cannot be used to label another gateway's order "sandbox".
    const other = await ctx.api('post', '/api/orders').send({ order_no: `REAL-${engine}-2`, amount: '3.20' });
    expect(other.status).toBe(201);
    const forged = `/callback/sandbox?${query(gatewayParams(`REAL-${engine}-2`, { amount: '3.20' }))}`;
    html(await agent.get(forged).set('Accept', BROWSER), 404);
    expect(await paymentLogs(ctx, `REAL-${engine}-2`)).toHaveLength(0);
    expect((await orderRow(ctx, `REAL-${engine}-2`)).status).toBe('pending');
  });

  it('the API reference groups its operations under translated headings in Chinese', async () => {
    const zh = html(await request(ctx.app).get('/docs?lang=zh-CN'), 200);
    const sidebar = zh.slice(zh.indexOf('<aside'), zh.indexOf('</aside>'));
    for (const name of ['订单', '商户通知', '兼容查询接口', '网关回调', '运维']) expect(sidebar).toContain(`<li class="mt-2 fw-semibold">${name}</li>`);
    for (const name of ['Orders', 'Notifications', 'Heritage query API', 'Gateway callbacks', 'Operations']) expect(sidebar).not.toContain(`>${name}<`);
    expect(zh).toMatch(/<h2 class="h3">订单<\/h2>/);
    // Anchors stay stable across languages.
    expect(zh).toContain('id="tag-Orders"');
    const en = html(await request(ctx.app).get('/docs?lang=en'), 200);
    expect(en).toContain('<li class="mt-2 fw-semibold">Orders</li>');
  });
});
