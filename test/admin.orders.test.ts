import { sql } from 'kysely';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consolePage, signedInAgent } from './helpers/admin.ts';
import { createDeliveryContext, type DeliveryContext } from './helpers/delivery-context.ts';
import { ENGINES } from './helpers/engines.ts';
import { gatewayParams, orderRow, unescapeHtml } from './helpers/pages.ts';
import { startReceiver, type Receiver } from './helpers/receiver.ts';

/** Issue 6 item 3: order list with filters and pagination, the detail timeline, resend and close. */

const listed = (html: string) => [...html.matchAll(/<tr data-order-no="([^"]+)">/g)].map((m) => m[1]!);

describe.each(ENGINES)('console orders on %s', (engine) => {
  let ctx: DeliveryContext;
  let receiver: Receiver;
  let agent: request.Agent;
  const tag = `${engine === 'mysql' ? 'M' : 'S'}${Date.now().toString(36)}`;

  beforeAll(async () => {
    ctx = await createDeliveryContext(engine);
    receiver = await startReceiver();
    // 27 orders "<tag>N00".."<tag>N26" created one day apart (2026-01-01 … 2026-01-27), every third one closed.
    for (let i = 0; i < 27; i++) {
      const orderNo = `${tag}N${String(i).padStart(2, '0')}`;
      expect((await ctx.api('post', '/api/orders').send({ order_no: orderNo, amount: `${i + 1}.00`, subject: `Order ${i}` })).status).toBe(201);
      const day = `2026-01-${String(i + 1).padStart(2, '0')} 10:00:00.000`;
      await ctx.db.kysely
        .updateTable('orders')
        .set({ created_at: day, updated_at: day, ...(i % 3 === 2 ? { status: 'closed' } : {}) })
        .where('order_no', '=', orderNo)
        .execute();
    }
    // `_` is a wildcard for LIKE: the prefix search must treat it as a plain character.
    for (const orderNo of [`${tag}X_1`, `${tag}XA1`, `${tag}X_2`])
      expect((await ctx.api('post', '/api/orders').send({ order_no: orderNo, amount: '1.00' })).status).toBe(201);
    agent = await signedInAgent(ctx.app, 'Olivia');
  });
  afterAll(async () => {
    await receiver?.close();
    await ctx?.close();
  });

  it('lists orders newest first, 25 per page, with a total', async () => {
    const { html } = await consolePage(agent, '/admin/orders');
    expect(html).toMatch(/id="orders-total">30 orders</);
    expect(listed(html)).toHaveLength(25);
    expect(html).toContain('Page 1 of 2');
    const second = await consolePage(agent, '/admin/orders?page=2');
    expect(listed(second.html)).toEqual([`${tag}N04`, `${tag}N03`, `${tag}N02`, `${tag}N01`, `${tag}N00`]);
    expect(second.html).toMatch(/id="page-prev" href="\/admin\/orders"/);
  });

  it('filters by status and by creation date (inclusive, UTC days)', async () => {
    const closed = await consolePage(agent, '/admin/orders?status=closed');
    expect(closed.html).toMatch(/id="orders-total">9 orders</);
    expect(listed(closed.html).every((n) => Number(n.slice(-2)) % 3 === 2)).toBe(true);
    expect(closed.html).toMatch(/<option value="closed" selected>/);
    const range = await consolePage(agent, '/admin/orders?from=2026-01-10&to=2026-01-12');
    expect(listed(range.html)).toEqual([`${tag}N11`, `${tag}N10`, `${tag}N09`]);
    const both = await consolePage(agent, '/admin/orders?status=closed&from=2026-01-01&to=2026-01-12&page=');
    expect(listed(both.html)).toEqual([`${tag}N11`, `${tag}N08`, `${tag}N05`, `${tag}N02`]);
    expect(both.html).toContain('value="2026-01-12"');
  });

  it('searches by order-number prefix, with _ as a plain character, combined with filters and pages', async () => {
    expect(listed((await consolePage(agent, `/admin/orders?q=${tag}X_`)).html)).toEqual([`${tag}X_2`, `${tag}X_1`]);
    expect(listed((await consolePage(agent, `/admin/orders?q=${tag}X`)).html)).toEqual([`${tag}X_2`, `${tag}X_1`, `${tag}XA1`]); // byte order: '_' (0x5F) after 'A' (0x41)
    expect(listed((await consolePage(agent, `/admin/orders?q=${tag}N2`)).html)).toEqual([
      `${tag}N26`,
      `${tag}N25`,
      `${tag}N24`,
      `${tag}N23`,
      `${tag}N22`,
      `${tag}N21`,
      `${tag}N20`,
    ]);
    expect(listed((await consolePage(agent, `/admin/orders?q=${tag}N2&status=closed`)).html)).toEqual([`${tag}N26`, `${tag}N23`, `${tag}N20`]);
    const all = await consolePage(agent, `/admin/orders?q=${tag}N`);
    expect(all.html).toMatch(/id="orders-total">27 orders</);
    expect(all.html).toContain(`href="/admin/orders?q=${tag}N&amp;page=2"`);
    expect(listed((await consolePage(agent, `/admin/orders?q=${tag}N&page=2`)).html)).toEqual([`${tag}N01`, `${tag}N00`]);
    const none = await consolePage(agent, '/admin/orders?q=ZZZnothing');
    expect(none.html).toContain('id="orders-empty"');
  });

  it('reports invalid filters on the page instead of failing', async () => {
    const res = await consolePage(agent, '/admin/orders?q=%3Cscript%3E&from=yesterday&status=lost');
    expect(res.html).toContain('id="filter-error"');
    expect(res.html).toContain('value="&lt;script&gt;"');
    expect(res.html).not.toContain('<script>');
    expect(listed(res.html)).toEqual([]);
  });

  it('shows the order timeline: payment log with raw payload escaped, events with seq and delivery attempts', async () => {
    const orderNo = `${tag}PAY`;
    expect((await ctx.api('post', '/api/orders').send({ order_no: orderNo, amount: '12.34', notify_url: receiver.url, subject: '<b>tea</b>' })).status).toBe(
      201,
    );
    const xss = '<script>alert("pwned")</script>';
    const params = gatewayParams(orderNo, { attach: xss, transaction_id: '<svg/onload=alert(1)>' });
    expect((await request(ctx.app).post('/notify').type('form').send(params)).status).toBe(200);
    await ctx.waitForStatus(orderNo, 'delivered');
    const { html } = await consolePage(agent, `/admin/orders/${orderNo}`);
    expect(html).not.toContain('<script>alert');
    expect(html).not.toContain('<svg/onload');
    expect(html).not.toContain('<b>tea</b>');
    expect(html).toContain('&lt;b&gt;tea&lt;/b&gt;');
    const kinds = [...html.matchAll(/<li class="timeline-item [^"]*" data-kind="(\w+)"/g)].map((m) => m[1]);
    expect(kinds).toEqual(['created', 'payment', 'event']);
    const payment = html.slice(html.indexOf('data-kind="payment"'), html.indexOf('data-kind="event"'));
    expect(payment).toContain('data-verdict="applied"');
    expect(payment).toContain('<span class="badge text-bg-light border font-monospace">generic</span>');
    expect(payment).toMatch(/data-field="remote_ip">(::ffff:)?127\.0\.0\.1</);
    // The raw form, pretty-printed one field per line and escaped.
    const raw = unescapeHtml(/<pre class="payload-text mt-2 mb-0"><code>([^<]*)<\/code><\/pre>/.exec(payment)![1]!);
    expect(raw).toContain(`attach = ${xss}`);
    expect(raw).toContain('amount = 12.34');
    expect(raw.split('\n')).toHaveLength(Object.keys(params).length);
    expect(payment).toContain('&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;');
    const event = html.slice(html.indexOf('data-kind="event"'));
    expect(event).toContain('data-seq="1"');
    expect(event).toContain('order.paid');
    expect(event).toContain('<span class="badge text-bg-light border">seq 1</span>');
    expect(event).toMatch(/data-field="event-status">Delivered</);
    expect(event).toMatch(
      /<tr class="attempt" data-attempt="1">[\s\S]*?<span class="badge text-bg-success">200<\/span>[\s\S]*?<code class="excerpt">success<\/code>/,
    );
    expect(event).toMatch(/<td class="text-end text-nowrap small">\d+ ms<\/td>/);
    expect(html).toMatch(/1 payment-log entry, 1 event, 1 delivery attempt;/);
  });

  it('resend queues a fresh delivery: the merchant gets it again and the timeline shows a second attempt', async () => {
    const orderNo = await ctx.paidOrder(receiver.url);
    await ctx.waitForStatus(orderNo, 'delivered');
    const before = receiver.received.length;
    const { csrf } = await consolePage(agent, `/admin/orders/${orderNo}`);
    const res = await agent.post(`/admin/orders/${orderNo}/resend`).type('form').send({ _csrf: csrf });
    expect(res.status).toBe(303);
    expect(res.headers.location).toBe(`/admin/orders/${orderNo}?flash=resent`);
    await receiver.waitFor(before + 1);
    await ctx.waitForStatus(orderNo, 'delivered');
    expect((await ctx.attempts(orderNo)).map((a) => a.attempt_no)).toEqual([1, 2]);
    const page = await consolePage(agent, res.headers.location!);
    expect(page.html).toContain('data-flash="resent"');
    expect(page.html).toContain('A fresh delivery of the latest notification was queued.');
    expect([...page.html.matchAll(/<tr class="attempt" data-attempt="(\d)">/g)].map((m) => m[1])).toEqual(['1', '2']);
    expect(page.html).toMatch(/data-kind="audit" data-action="order.resend">[\s\S]*?Notification resent by Olivia/);
    const audit = await ctx.db.kysely.selectFrom('audit_log').selectAll().where('target', '=', `order:${orderNo}`).execute();
    expect(audit).toEqual([expect.objectContaining({ actor: 'Olivia', action: 'order.resend', old_value: null })]);
    expect(JSON.parse(audit[0]!.new_value!)).toMatchObject({ order_no: orderNo, status: 'pending' });
  });

  it('resend without a notification flashes a refusal', async () => {
    const orderNo = `${tag}N00`;
    const { csrf, html } = await consolePage(agent, `/admin/orders/${orderNo}`);
    expect(html).toMatch(/id="resend-button" disabled/);
    const res = await agent.post(`/admin/orders/${orderNo}/resend`).type('form').send({ _csrf: csrf });
    expect(res.headers.location).toBe(`/admin/orders/${orderNo}?flash=resend_refused`);
  });

  it('close: closes a pending order (audit-logged), and refuses a second time', async () => {
    const orderNo = `${tag}N01`;
    const { csrf, html } = await consolePage(agent, `/admin/orders/${orderNo}`);
    expect(html).toMatch(/id="close-button"\s/);
    expect(html).toContain('data-confirm="Close this order?');
    const res = await agent.post(`/admin/orders/${orderNo}/close`).type('form').send({ _csrf: csrf });
    expect(res.headers.location).toBe(`/admin/orders/${orderNo}?flash=closed`);
    expect((await orderRow(ctx, orderNo)).status).toBe('closed');
    const after = await consolePage(agent, res.headers.location!);
    expect(after.html).toContain('The order was closed.');
    expect(after.html).toMatch(/id="order-status"><span class="badge status-badge status-closed" data-status="closed">Closed</);
    expect(after.html).toMatch(/id="close-button" disabled/);
    expect(after.html).toContain('Closed by Olivia');
    // The language switch does not repeat the flash.
    expect(after.html).toContain('href="?lang=zh-CN"');
    const again = await agent.post(`/admin/orders/${orderNo}/close`).type('form').send({ _csrf: csrf });
    expect(again.headers.location).toBe(`/admin/orders/${orderNo}?flash=close_refused`);
    const audit = await ctx.db.kysely.selectFrom('audit_log').selectAll().where('target', '=', `order:${orderNo}`).execute();
    expect(audit.map((a) => [a.actor, a.action, a.old_value, a.new_value])).toEqual([['Olivia', 'order.close', '{"status":"pending"}', '{"status":"closed"}']]);
  });

  it('an action whose audit row cannot be written changes nothing (the row commits with the change or not at all)', async () => {
    const orderNo = `${tag}N04`;
    const paid = await ctx.paidOrder(receiver.url);
    await ctx.waitForStatus(paid, 'delivered');
    const { csrf } = await consolePage(agent, `/admin/orders/${orderNo}`);
    await sql`ALTER TABLE audit_log RENAME TO audit_log_away`.execute(ctx.db.kysely);
    try {
      // A missing table is an internal error on SQLite and a storage error (503) on MySQL; either way it fails.
      expect([500, 503]).toContain((await agent.post(`/admin/orders/${orderNo}/close`).type('form').send({ _csrf: csrf })).status);
      expect([500, 503]).toContain((await agent.post(`/admin/orders/${paid}/resend`).type('form').send({ _csrf: csrf })).status);
    } finally {
      await sql`ALTER TABLE audit_log_away RENAME TO audit_log`.execute(ctx.db.kysely);
    }
    const order = await orderRow(ctx, orderNo);
    expect([order.status, Number(order.seq)]).toEqual(['pending', 0]);
    const events = await ctx.db.kysely.selectFrom('notifications').select(['status', 'schedule_step']).where('order_no', 'in', [orderNo, paid]).execute();
    expect(events).toEqual([{ status: 'delivered', schedule_step: 0 }]);
    const audit = await ctx.db.kysely
      .selectFrom('audit_log')
      .select('id')
      .where('target', 'in', [`order:${orderNo}`, `order:${paid}`])
      .execute();
    expect(audit).toEqual([]);
  });

  it('unknown orders and bad order numbers are console error pages', async () => {
    const missing = await agent.get('/admin/orders/NOPE404');
    expect(missing.status).toBe(404);
    expect(missing.text).toContain('id="nav-orders"');
    expect((await agent.get('/admin/orders/bad%20no')).status).toBe(400);
    const { csrf } = await consolePage(agent, '/admin/orders');
    expect((await agent.post('/admin/orders/NOPE404/close').type('form').send({ _csrf: csrf })).status).toBe(404);
  });

  it('speaks Chinese', async () => {
    const zh = (await agent.get(`/admin/orders/${tag}N00?lang=zh-CN`)).text;
    for (const text of ['时间线', '重发通知', '关闭订单', '订单创建', '概要']) expect(zh).toContain(text);
    expect(zh).not.toMatch(/undefined|admin_|verdict_|delivery_/); // no missing dictionary entry
    const list = (await agent.get('/admin/orders')).text;
    for (const text of ['订单号前缀', '筛选', '支付方式']) expect(list).toContain(text);
    expect(list).toMatch(/id="orders-total">共 \d+ 个订单</);
    await agent.get('/admin/orders?lang=en');
  });
});
