import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toDbTime } from '../src/shared/time.ts';
import { signedInAgent } from './helpers/admin.ts';
import { createDeliveryContext, type DeliveryContext } from './helpers/delivery-context.ts';
import { ENGINES } from './helpers/engines.ts';
import { createOrder, gatewayParams, uid, unescapeHtml } from './helpers/pages.ts';
import { startReceiver, type Receiver } from './helpers/receiver.ts';

/** Rough edges of the console a newcomer ran into: plurals, the backlog's age, the period, readable fields, both languages. */

/** The text of the element with this id (tags removed, whitespace collapsed), or undefined. */
function textOf(page: string, id: string): string | undefined {
  const match = new RegExp(`<([a-z0-9]+)[^>]*\\bid="${id}"[^>]*>([\\s\\S]*?)</\\1>`).exec(page);
  return match
    ? unescapeHtml(
        match[2]!
          .replace(/<[^>]+>/g, ' ')
          .replace(/\s+/g, ' ')
          .trim(),
      )
    : undefined;
}

/** The `<li>` of the timeline holding the payment-log entry of this kind (`notify` or `return`). */
function paymentItem(page: string, kind: string): string {
  const start = page.search(new RegExp(`<li class="timeline-item tl-payment[^"]*" data-kind="payment" data-gateway-kind="${kind}"`));
  expect(start, `no ${kind} entry`).toBeGreaterThan(-1);
  return page.slice(start, page.indexOf('</li>', start));
}

describe.each(ENGINES)('console rough edges on %s', (engine) => {
  let ctx: DeliveryContext;
  let ok: Receiver;
  let failing: Receiver;
  let delivered: string;
  let waiting: string;
  let bare: string;

  beforeAll(async () => {
    ctx = await createDeliveryContext(engine, { NOTIFY_RETRY_SCHEDULE: '1h' });
    ok = await startReceiver();
    failing = await startReceiver((_n, res) => {
      res.statusCode = 500;
      res.end('boom');
    });
    delivered = await ctx.paidOrder(ok.url);
    waiting = await ctx.paidOrder(failing.url);
    await ctx.waitForStatus(delivered, 'delivered');
    for (let i = 0; i < 200 && (await ctx.attempts(waiting)).length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    bare = await createOrder(ctx, { order_no: uid('BARE'), subject: 'No notify URL' });
    // One flagged callback: an unknown order.
    expect(
      (
        await request(ctx.app)
          .post('/notify')
          .type('form')
          .send(gatewayParams(uid('GHOST')))
      ).status,
    ).toBe(404);
  });
  afterAll(async () => {
    await Promise.all([ok?.close(), failing?.close()]);
    await ctx?.close();
  });

  it('counts in words with the right number: one callback, one event, one order', async () => {
    const agent = await signedInAgent(ctx.app);
    const dashboard = (await agent.get('/admin?lang=en')).text;
    expect(textOf(dashboard, 'inbox-alert-text')).toBe('1 flagged callback needs review.');
    expect(textOf(dashboard, 'kpi-settled')).toBe('1 settled event');
    expect(dashboard).not.toContain('(s)');
    const list = (await agent.get(`/admin/orders?q=${delivered}`)).text;
    expect(textOf(list, 'orders-total')).toBe('1 order');
    const detail = (await agent.get(`/admin/orders/${delivered}`)).text;
    expect(textOf(detail, 'timeline-counts')).toBe('1 payment-log entry, 1 event, 1 delivery attempt; oldest first.');
    const none = (await agent.get(`/admin/orders/${bare}`)).text;
    expect(textOf(none, 'timeline-counts')).toBe('0 payment-log entries, 0 events, 0 delivery attempts; oldest first.');
    const rejected = textOf(none, 'rejected-total')!;
    expect(rejected.startsWith('No request claiming this order was refused before verification')).toBe(true);
  });

  it('shows how long the backlog has waited, also when its next attempt is still ahead', async () => {
    const agent = await signedInAgent(ctx.app);
    const page = (await agent.get('/admin?lang=en')).text;
    expect(textOf(page, 'kpi-backlog')).toBe('1');
    // The failing merchant's retry is an hour away: nothing is overdue, but the event has been waiting.
    expect(textOf(page, 'kpi-oldest-due')).toMatch(/^Oldest waiting: (\d+ s|1 min) · next attempt in (59 min|1 h 0 min)$/);
    const zh = (await agent.get('/admin?lang=zh-CN')).text;
    expect(textOf(zh, 'kpi-oldest-due')).toMatch(/^最早等待：(\d+ 秒|1 分钟) · 下次投递 (59 分钟|1 小时 0 分钟)后$/);
  });

  it('the callbacks card follows the period: per day for 7 and 30 days', async () => {
    // A rejected callback from three days ago: in the 7-day view only.
    const old = toDbTime(new Date(Date.now() - 3 * 86_400_000));
    await ctx.db.kysely
      .insertInto('payment_logs')
      .values({
        order_no: null,
        gateway: 'generic',
        kind: 'notify',
        transaction_id: null,
        amount_minor: null,
        currency: null,
        status: null,
        verdict: 'malformed',
        message: 'old',
        payment_data: null,
        callback_data: 'x=1',
        remote_ip: '203.0.113.9',
        created_at: old,
        callback_bytes: 3,
        callback_sha256: null,
        unverified: 1,
      })
      .execute();
    const agent = await signedInAgent(ctx.app);
    const day = (await agent.get('/admin?lang=en')).text;
    expect(textOf(day, 'kpi-callbacks-label')).toBe('Callbacks · last 24 h');
    expect([...day.matchAll(/<g class="column" data-hour="/g)]).toHaveLength(24);
    expect(day).not.toContain('data-verdict="malformed"');
    const week = (await agent.get('/admin?period=7d&lang=en')).text;
    expect(textOf(week, 'kpi-callbacks-label')).toBe('Callbacks · last 7 days');
    expect(textOf(week, 'chart-callbacks-heading')).toBe('Callbacks per day by verdict (UTC) · last 7 days');
    const days = [...week.matchAll(/<g class="column" data-day="(\d{4}-\d\d-\d\d)" data-total="(\d+)">/g)];
    expect(days).toHaveLength(7);
    expect(days.at(-1)![1]).toBe(toDbTime(new Date()).slice(0, 10));
    expect(days.find((d) => d[1] === old.slice(0, 10))![2]).toBe('1');
    expect(week).toContain('data-verdict="malformed"');
    expect(Number(textOf(week, 'kpi-callbacks'))).toBe(Number(textOf(day, 'kpi-callbacks')) + 1);
    const month = (await agent.get('/admin?period=30d&lang=en')).text;
    expect([...month.matchAll(/<g class="column" data-day="/g)]).toHaveLength(30);
    expect(textOf(month, 'kpi-callbacks-label')).toBe('Callbacks · last 30 days');
  });

  it('shows verified fields under the gateway’s own names, as a table', async () => {
    const agent = await signedInAgent(ctx.app);
    const detail = (await agent.get(`/admin/orders/${delivered}?lang=en`)).text;
    const item = paymentItem(detail, 'notify');
    const table = item.slice(item.indexOf('class="table table-sm fields-table'));
    const rows = Object.fromEntries(
      [...table.matchAll(/<tr><th scope="row"[^>]*>([^<]+)<\/th><td[^>]*>([^<]*)<\/td><\/tr>/g)].map((m) => [m[1], unescapeHtml(m[2]!)]),
    );
    // The parameters the gateway signed (this one sent no currency), not the service's internal names.
    expect(rows).toEqual({ order_no: delivered, transaction_id: `T-${delivered}`, amount: '10.00', status: 'success' });
    for (const internal of ['orderNo', 'transactionId', '"kind"', 'outcome']) expect(item).not.toContain(internal);

    // A real gateway's verified body (WeChat Pay's decrypted resource): nested fields by their path.
    const wechat = JSON.stringify({
      out_trade_no: bare,
      transaction_id: '4200001',
      trade_state: 'SUCCESS',
      amount: { total: 1234, currency: 'CNY' },
      payer: { openid: 'o-1' },
    });
    await ctx.db.kysely
      .insertInto('payment_logs')
      .values({
        order_no: bare,
        gateway: 'wechatpay',
        kind: 'notify',
        transaction_id: '4200001',
        amount_minor: 1234,
        currency: 'CNY',
        status: 'paid',
        verdict: 'amount_mismatch',
        message: 'amount differs',
        payment_data: wechat,
        callback_data: '{}',
        remote_ip: '203.0.113.7',
        created_at: toDbTime(new Date()),
        callback_bytes: null,
        callback_sha256: null,
        unverified: 0,
      })
      .execute();
    const bareDetail = (await agent.get(`/admin/orders/${bare}?lang=en`)).text;
    const wx = paymentItem(bareDetail, 'notify');
    const wxRows = Object.fromEntries(
      [...wx.matchAll(/<tr><th scope="row"[^>]*>([^<]+)<\/th><td[^>]*>([^<]*)<\/td><\/tr>/g)].map((m) => [m[1], unescapeHtml(m[2]!)]),
    );
    expect(wxRows).toEqual({
      out_trade_no: bare,
      transaction_id: '4200001',
      trade_state: 'SUCCESS',
      'amount.total': '1234',
      'amount.currency': 'CNY',
      'payer.openid': 'o-1',
    });
  });

  it('explains, next to the button, why an order without an event cannot be resent', async () => {
    const agent = await signedInAgent(ctx.app);
    const page = (await agent.get(`/admin/orders/${bare}?lang=en`)).text;
    expect(page).toMatch(/<button class="btn btn-sm btn-outline-primary" type="submit" id="resend-button" disabled aria-describedby="resend-unavailable"/);
    expect(textOf(page, 'resend-unavailable')).toBe('Nothing to resend: this order has no notification yet (no state change, or no notify URL).');
    const withEvent = (await agent.get(`/admin/orders/${delivered}?lang=en`)).text;
    expect(withEvent).not.toContain('id="resend-unavailable"');
    expect(withEvent).toMatch(/id="resend-button">/);
  });

  it('speaks Chinese for statuses, verdicts, methods and messages, keeping the raw codes beside them', async () => {
    const agent = await signedInAgent(ctx.app);
    const zh = (await agent.get(`/admin/orders/${delivered}?lang=zh-CN`)).text;
    const item = paymentItem(zh, 'notify');
    expect(textOf(item, `reported-status-${/id="payment-(\d+)"/.exec(item)![1]}`)).toBe('已支付 paid');
    expect(item).toMatch(/<span class="badge verdict-badge verdict-applied">已处理<\/span> <code class="code-label">applied<\/code>/);
    expect(item).toContain('支付结果已应用到订单。');
    expect(item).toMatch(/<code class="code-label" lang="en">payment applied<\/code>/);
    const alipay = await createOrder(ctx, { order_no: uid('ALI'), payment_method: 'alipay' });
    expect(textOf((await agent.get(`/admin/orders/${alipay}?lang=zh-CN`)).text, 'order-method')).toBe('支付宝 alipay');
    const inbox = (await agent.get('/admin/inbox?lang=zh-CN')).text;
    expect(inbox).toMatch(/<span class="badge verdict-badge verdict-unknown_order">未知订单<\/span> <code class="code-label">unknown_order<\/code>/);
    expect(inbox).not.toMatch(/generic · unknown_order/);
    const list = (await agent.get('/admin/orders?lang=zh-CN')).text;
    expect(list).toMatch(/<td class="d-none d-lg-table-cell">支付宝<\/td>/);
    // English pages keep the gateway's own words.
    const en = (await agent.get(`/admin/orders/${delivered}?lang=en`)).text;
    expect(textOf(paymentItem(en, 'notify'), `reported-status-${/id="payment-(\d+)"/.exec(item)![1]}`)).toBe('Paid');
    expect(en).toContain('payment applied');
  });
});
