import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toDbTime } from '../src/shared/time.ts';
import { signedInAgent } from './helpers/admin.ts';
import { createDeliveryContext, type DeliveryContext } from './helpers/delivery-context.ts';
import { ENGINES } from './helpers/engines.ts';
import { TEST_GATEWAY_SECRET } from './helpers/context.ts';
import { signed } from './helpers/gateway-signer.ts';
import { createOrder, gatewayParams, uid } from './helpers/pages.ts';
import { startReceiver, type Receiver } from './helpers/receiver.ts';

/** Issue 6 item 2: the dashboard's figures, from seeded orders, callbacks and deliveries. */

/** `data-key="<key>" data-value="<n>"` of the bars of one chart. */
function bars(html: string, chartId: string): Record<string, number> {
  const svg = html.slice(html.indexOf(`id="${chartId}"`), html.indexOf('</svg>', html.indexOf(`id="${chartId}"`)));
  return Object.fromEntries([...svg.matchAll(/data-key="(\w+)" data-value="(\d+)"/g)].map((m) => [m[1]!, Number(m[2])]));
}

/** Sum of the stacked callback segments per verdict. */
function verdictTotals(html: string): Record<string, number> {
  const totals: Record<string, number> = {};
  for (const m of html.matchAll(/data-verdict="(\w+)" data-value="(\d+)"/g)) totals[m[1]!] = (totals[m[1]!] ?? 0) + Number(m[2]);
  return totals;
}

const kpi = (html: string, id: string) => new RegExp(`id="${id}">([^<]*)<`).exec(html)?.[1]?.trim();

describe.each(ENGINES)('console dashboard on %s', (engine) => {
  let ctx: DeliveryContext;
  let ok: Receiver;
  let gone: Receiver;
  let failing: Receiver;
  let html: string;

  beforeAll(async () => {
    ctx = await createDeliveryContext(engine, { NOTIFY_RETRY_SCHEDULE: '1h' });
    ok = await startReceiver();
    gone = await startReceiver((_n, res) => {
      res.statusCode = 410;
      res.end('gone');
    });
    failing = await startReceiver((_n, res) => {
      res.statusCode = 500;
      res.end('boom');
    });
    // 3 paid (2 delivered, 1 abandoned after 410), 1 paid whose merchant fails (retry in 1 h: backlog), 1 failed, 1 closed, 2 pending.
    for (let i = 0; i < 2; i++) await ctx.paidOrder(ok.url);
    await ctx.paidOrder(gone.url);
    await ctx.paidOrder(failing.url);
    const failed = await createOrder(ctx);
    expect(
      (
        await request(ctx.app)
          .post('/notify')
          .type('form')
          .send(gatewayParams(failed, { status: 'failed' }))
      ).status,
    ).toBe(200);
    const closed = await createOrder(ctx);
    expect((await ctx.api('post', `/api/orders/${closed}/close`)).status).toBe(200);
    await createOrder(ctx);
    const pending = await createOrder(ctx);
    // Rejected and flagged callbacks: a bad signature, an unknown order, an amount mismatch.
    expect(
      (
        await request(ctx.app)
          .post('/notify')
          .type('form')
          .send({ ...gatewayParams(pending), sign: 'BAD' })
      ).status,
    ).toBe(401);
    expect(
      (
        await request(ctx.app)
          .post('/notify')
          .type('form')
          .send(gatewayParams(uid('GHOST')))
      ).status,
    ).toBe(404);
    expect(
      (
        await request(ctx.app)
          .post('/notify')
          .type('form')
          .send(gatewayParams(pending, { amount: '99.00' }))
      ).status,
    ).toBe(409);
    // An order from three days ago counts in the 7-day view only.
    const old = toDbTime(new Date(Date.now() - 3 * 86_400_000));
    await ctx.db.kysely
      .insertInto('orders')
      .values({ order_no: uid('OLD'), amount_minor: 100, currency: 'CNY', status: 'paid', created_at: old, updated_at: old })
      .execute();
    await ok.waitFor(2);
    await gone.waitFor(1);
    await failing.waitFor(1);
    const settled = async () => {
      const rows = await ctx.db.kysely.selectFrom('notifications').select(['status', 'attempts']).execute();
      return rows.filter((r) => r.status === 'delivered' || r.status === 'abandoned' || (r.status === 'pending' && r.attempts > 0)).length;
    };
    for (let i = 0; i < 200 && (await settled()) < 4; i++) await new Promise((r) => setTimeout(r, 25));
    html = (await (await signedInAgent(ctx.app)).get('/admin')).text;
  });
  afterAll(async () => {
    await Promise.all([ok?.close(), gone?.close(), failing?.close()]);
    await ctx?.close();
  });

  it('shows orders by status for the last 24 hours', () => {
    expect(bars(html, 'chart-orders')).toEqual({ pending: 2, paid: 4, failed: 1, closed: 1, refunded: 0 });
    expect(kpi(html, 'kpi-orders')).toBe('8');
    expect(html).toContain('Paid: 50%');
  });

  it('shows callbacks of the last 24 h per hour by verdict, with accessible titles and a table', () => {
    expect(verdictTotals(html)).toEqual({ applied: 5, bad_signature: 1, unknown_order: 1, amount_mismatch: 1 });
    expect(kpi(html, 'kpi-callbacks')).toBe('8');
    const hours = [...html.matchAll(/<g class="column" data-hour="(\d{4}-\d\d-\d\d \d\d)" data-total="(\d+)">/g)];
    expect(hours).toHaveLength(24);
    // The last column is the hour of "as of" (the render time), in UTC.
    expect(hours.at(-1)![1]).toBe(/id="as-of">As of (\d{4}-\d\d-\d\d \d\d):/.exec(html)![1]);
    expect(hours.reduce((s, h) => s + Number(h[2]), 0)).toBe(8);
    expect(html).toMatch(
      /<svg class="chart chart-stacked" id="chart-callbacks"[^>]*role="img" aria-labelledby="chart-callbacks-title">\s*<title id="chart-callbacks-title">Callbacks per hour by verdict/,
    );
    // Segment order follows the verdict list (an hour boundary during the seeding may split the counts).
    expect(html).toMatch(/<title>\d{4}-\d\d-\d\d \d\d:00 UTC — \d+, Applied: \d+(, Amount mismatch: 1)?(, Unknown order: 1)?(, Bad signature: 1)?<\/title>/);
    expect(html).toContain('id="chart-callbacks-table"');
    expect(html).toMatch(
      /<li class="list-inline-item me-3"><span class="legend-swatch fill-verdict-bad_signature" aria-hidden="true"><\/span>Bad signature <span class="text-secondary">\(1\)<\/span><\/li>/,
    );
  });

  it('shows delivery outcomes, backlog and the oldest due event', () => {
    expect(bars(html, 'chart-deliveries')).toEqual({ delivered: 2, dead: 0, abandoned: 1, pending: 1, delivering: 0 });
    expect(kpi(html, 'kpi-delivery-rate')).toBe('66.7%');
    expect(kpi(html, 'kpi-backlog')).toBe('1');
    // The failing merchant's retry is an hour away: nothing is overdue, but the event has been waiting.
    expect(kpi(html, 'kpi-oldest-due')).toMatch(/^Oldest waiting: (\d+ s|1 min) · next attempt in (59 min|1 h 0 min)$/);
  });

  it('reports the age of the oldest due event', async () => {
    const agent = await signedInAgent(ctx.app);
    // The loop stops first: running, it could claim the event made due here and reschedule it before the page is read.
    await ctx.dispatcher.stop(2000);
    const due = toDbTime(new Date(Date.now() - 125_000));
    await ctx.db.kysely.updateTable('notifications').set({ next_attempt_at: due }).where('status', '=', 'pending').execute();
    const page = (await agent.get('/admin')).text;
    expect(page).toMatch(/id="kpi-oldest-due">Oldest waiting: [^<]+ · <span class="overdue">overdue by 2 min<\/span><\/div>/);
    expect(page).toMatch(/id="kpi-backlog">1</);
  });

  it('switches the period, links the inbox and speaks Chinese', async () => {
    const agent = await signedInAgent(ctx.app);
    const week = (await agent.get('/admin?period=7d')).text;
    expect(bars(week, 'chart-orders')).toEqual({ pending: 2, paid: 5, failed: 1, closed: 1, refunded: 0 });
    expect(week).toMatch(/class="btn btn-primary" href="\/admin\?period=7d" aria-current="true"/);
    expect(bars((await agent.get('/admin?period=bogus')).text, 'chart-orders')).toEqual(bars(html, 'chart-orders'));
    expect(html).toContain('id="inbox-alert"');
    expect(html).toMatch(/id="nav-badge-inbox"[^>]*>2</);
    const zh = (await agent.get('/admin?lang=zh-CN')).text;
    expect(zh).toContain('<html lang="zh-CN">');
    for (const text of ['概览', '各状态订单数', '商户通知', '每小时回调数', '已支付', '签名错误', '待投递通知', '退出登录']) expect(zh).toContain(text);
    for (const page of [zh, html, week]) expect(page).not.toMatch(/undefined|NaN|admin_|verdict_|delivery_/);
  });

  it('counts new callbacks at once (figures are not cached)', async () => {
    const res = await request(ctx.app)
      .post('/notify')
      .type('form')
      .send(signed({ order_no: 'X', transaction_id: 'T', amount: '1', status: 'success' }, `${TEST_GATEWAY_SECRET}x`));
    expect(res.status).toBe(401);
    const page = (await (await signedInAgent(ctx.app)).get('/admin')).text;
    expect(verdictTotals(page).bad_signature).toBe(2);
  });
});
