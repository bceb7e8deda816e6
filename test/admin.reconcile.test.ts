import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reconcilerOf } from '../src/app.ts';
import { toDbTime } from '../src/shared/time.ts';
import { consolePage, csrfOf, signedInAgent } from './helpers/admin.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';
import { createOrder, orderRow, uid, unescapeHtml } from './helpers/pages.ts';

/** The console side of reconciliation: attempts on the order timeline, "Ask the gateway now", the recovered-payments tile. */

/** The timeline entries' kinds, in page order. */
const kinds = (html: string) => [...html.matchAll(/<li class="timeline-item [^"]*" data-kind="(\w+)"/g)].map((m) => m[1]);
/** The HTML of the first timeline entry of `kind` (up to the next entry). */
function entry(html: string, kind: string): string {
  const start = html.indexOf(`data-kind="${kind}"`);
  expect(start, `no ${kind} entry`).toBeGreaterThan(-1);
  const next = html.indexOf('<li class="timeline-item', start);
  return html.slice(start, next === -1 ? undefined : next);
}
const textOf = (html: string, id: string) => new RegExp(`id="${id}"[^>]*>([^<]*)<`).exec(html)?.[1]?.trim();

const auditRows = (ctx: TestContext, orderNo: string) =>
  ctx.db.kysely.selectFrom('audit_log').selectAll().where('target', '=', `order:${orderNo}`).orderBy('id').execute();
const attemptRows = (ctx: TestContext, orderNo: string) =>
  ctx.db.kysely.selectFrom('reconcile_attempts').selectAll().where('order_no', '=', orderNo).orderBy('id').execute();

/** Pays a sandbox order at the sandbox checkout with "Pay, but lose the notification". */
async function payAndLose(ctx: TestContext, orderNo: string): Promise<void> {
  const shopper = request.agent(ctx.app);
  const checkout = await shopper.get(`/sandbox/pay/${orderNo}`);
  expect(checkout.status, checkout.text.slice(0, 300)).toBe(200);
  const res = await shopper
    .post(`/sandbox/pay/${orderNo}`)
    .type('form')
    .send({ _csrf: csrfOf(checkout.text), action: 'lose' });
  expect(res.headers.location).toBe(`/sandbox/pay/${orderNo}?lost=1`);
  expect((await orderRow(ctx, orderNo)).status).toBe('pending');
}

describe.each(ENGINES)('console reconciliation on %s', (engine) => {
  let ctx: TestContext;
  let agent: request.Agent;
  // The app's clock runs `offset` ms ahead of the wall clock: moving it makes orders due for their first look.
  let offset = 0;
  const clock = () => new Date(Date.now() + offset);

  beforeAll(async () => {
    ctx = await createTestContext(engine, { env: { RECONCILE_AFTER: '1s' }, clock });
    agent = await signedInAgent(ctx.app, 'Quinn');
  });
  afterAll(() => ctx?.close());

  it('dashboard: no recovered payment yet, not a warning', async () => {
    const { html } = await consolePage(agent, '/admin');
    expect(html).toMatch(/id="recovered-tile" data-state="ok"/);
    expect(textOf(html, 'kpi-recovered-24h')).toBe('0');
    expect(textOf(html, 'kpi-recovered-total')).toBe('0 in total');
    expect(html).toContain('Payments recovered by asking the gateway');
    expect(html).toContain('A recovered payment was paid at the gateway but its callback never reached this service');
  });

  it('the order timeline shows the reconciler’s look at the gateway and the payment it found, labelled as found by asking', async () => {
    const orderNo = await createOrder(ctx, { order_no: uid('RL'), payment_method: 'sandbox' });
    await payAndLose(ctx, orderNo);
    offset += 2_000;
    await reconcilerOf(ctx.app).runOnce();
    expect((await orderRow(ctx, orderNo)).status).toBe('paid');

    const { html } = await consolePage(agent, `/admin/orders/${orderNo}`);
    // No notify URL: no event to deliver.
    expect(kinds(html)).toEqual(['created', 'reconcile', 'payment']);
    const look = entry(html, 'reconcile');
    expect(look).toMatch(/data-trigger="schedule" data-action="query" data-outcome="recovered"/);
    expect(look).toContain('<strong>Asked the gateway</strong>');
    expect(look).toContain('<span class="badge text-bg-light border font-monospace">sandbox</span>');
    expect(look).toMatch(/data-field="outcome">Payment recovered</);
    expect(look).toMatch(/data-field="trigger">Scheduled check</);
    expect(look).toMatch(/data-field="action">Query</);
    expect(look).toMatch(/data-field="gateway_state">Paid</);
    expect(look).toMatch(/data-field="duration">\d+ ms</);
    // The gateway's answer, collapsed and escaped like the other raw payloads.
    const answer = /<details class="payload mt-2" id="answer-\d+">[\s\S]*?<code>([^<]*)<\/code>/.exec(look);
    expect(answer).not.toBeNull();
    expect(JSON.parse(unescapeHtml(answer![1]!))).toMatchObject({ order_no: orderNo, status: 'success' });

    const payment = entry(html, 'payment');
    expect(payment).toContain('data-gateway-kind="query"');
    expect(payment).toContain('<strong>Found by asking the gateway</strong>');
    expect(payment).toContain('id="query-note-');
    expect(html).toMatch(/1 payment-log entry, 0 events, 0 delivery attempts; oldest first\. <span id="timeline-queries">1 look at the gateway\.<\/span>/);
    // The order's facts: when it expires.
    const expires = (await orderRow(ctx, orderNo)).expires_at!;
    expect(textOf(html, 'order-expires-at')).toBe(expires.slice(0, 19));
  });

  it('"Ask the gateway now" recovers a lost payment: the order is paid, the action is audit-logged, the outcome flashed', async () => {
    const orderNo = await createOrder(ctx, { order_no: uid('RS'), payment_method: 'sandbox' });
    await payAndLose(ctx, orderNo);
    const { html, csrf } = await consolePage(agent, `/admin/orders/${orderNo}`);
    expect(html).toContain(`<form method="post" action="/admin/orders/${orderNo}/sync"`);
    expect(html).toMatch(/id="sync-button" title="[^"]+">Ask the gateway now</);

    // Without the form's token: 403, the gateway is not asked, nothing recorded.
    expect((await agent.post(`/admin/orders/${orderNo}/sync`).type('form').send({})).status).toBe(403);
    expect((await agent.post(`/admin/orders/${orderNo}/sync`).type('form').send({ _csrf: 'forged' })).status).toBe(403);
    expect((await orderRow(ctx, orderNo)).status).toBe('pending');
    expect(await attemptRows(ctx, orderNo)).toEqual([]);
    expect(await auditRows(ctx, orderNo)).toEqual([]);

    const res = await agent.post(`/admin/orders/${orderNo}/sync`).type('form').send({ _csrf: csrf });
    expect(res.status).toBe(303);
    expect(res.headers.location).toBe(`/admin/orders/${orderNo}?flash=sync_recovered`);
    const order = await orderRow(ctx, orderNo);
    expect(order.status).toBe('paid');
    expect(order.transaction_id).toMatch(/^SBX/);
    expect((await attemptRows(ctx, orderNo)).map((a) => [a.trigger, a.action, a.gateway_state, a.outcome])).toEqual([['manual', 'query', 'paid', 'recovered']]);
    const audit = await auditRows(ctx, orderNo);
    expect(audit.map((a) => [a.actor, a.action])).toEqual([['Quinn', 'order.sync']]);
    expect(JSON.parse(audit[0]!.old_value!)).toEqual({ status: 'pending' });
    expect(JSON.parse(audit[0]!.new_value!)).toEqual({ outcome: 'recovered', gateway_state: 'paid', status: 'paid' });

    const after = await consolePage(agent, res.headers.location!);
    expect(after.html).toMatch(/class="alert alert-success[^"]*"[^>]*data-flash="sync_recovered"/);
    expect(after.html).toContain('The gateway says this order is paid: its lost payment was recovered and applied.');
    expect(kinds(after.html)).toEqual(['created', 'reconcile', 'payment', 'audit']);
    expect(entry(after.html, 'reconcile')).toMatch(/data-field="trigger">Asked on request \(console or API\)</);
    expect(entry(after.html, 'audit')).toContain('Gateway asked by Quinn');

    // Asked again: the gateway says paid, the order already is; the flash says so.
    const again = await agent.post(`/admin/orders/${orderNo}/sync`).type('form').send({ _csrf: csrf });
    expect(again.headers.location).toBe(`/admin/orders/${orderNo}?flash=sync_already_paid`);
    expect(JSON.parse((await auditRows(ctx, orderNo))[1]!.new_value!)).toEqual({ outcome: 'already_paid', gateway_state: 'paid', status: 'paid' });
  });

  it('asked about an unpaid sandbox order: nothing changes, the flash says the gateway has no payment', async () => {
    const orderNo = await createOrder(ctx, { order_no: uid('RU'), payment_method: 'sandbox' });
    const { csrf } = await consolePage(agent, `/admin/orders/${orderNo}`);
    const res = await agent.post(`/admin/orders/${orderNo}/sync`).type('form').send({ _csrf: csrf });
    expect(res.headers.location).toBe(`/admin/orders/${orderNo}?flash=sync_unchanged`);
    expect((await orderRow(ctx, orderNo)).status).toBe('pending');
    const page = await consolePage(agent, res.headers.location!);
    expect(page.html).toMatch(/class="alert alert-info[^"]*"[^>]*data-flash="sync_unchanged"/);
    expect(entry(page.html, 'reconcile')).toMatch(/data-outcome="unchanged"/);
  });

  it('a generic order without GENERIC_QUERY_URL has no button, and a crafted POST is an error flash that changes nothing', async () => {
    const orderNo = await createOrder(ctx, { order_no: uid('RG') });
    const { html, csrf } = await consolePage(agent, `/admin/orders/${orderNo}`);
    expect(html).not.toContain('id="sync-button"');
    expect(html).not.toContain('/sync"');
    const res = await agent.post(`/admin/orders/${orderNo}/sync`).type('form').send({ _csrf: csrf });
    expect(res.status).toBe(303);
    expect(res.headers.location).toBe(`/admin/orders/${orderNo}?flash=sync_not_queryable`);
    const page = await consolePage(agent, res.headers.location!);
    expect(page.html).toMatch(/class="alert alert-danger[^"]*"[^>]*data-flash="sync_not_queryable"/);
    expect(page.html).toContain('This order’s gateway cannot be asked: its query API is not configured here.');
    const order = await orderRow(ctx, orderNo);
    expect([order.status, Number(order.seq)]).toEqual(['pending', 0]);
    expect(await attemptRows(ctx, orderNo)).toEqual([]);
    expect(await auditRows(ctx, orderNo)).toEqual([]);
    expect((await agent.post('/admin/orders/NOPE404/sync').type('form').send({ _csrf: csrf })).status).toBe(404);
  });

  it('dashboard: recovered payments in the last 24 h and in total, as a warning', async () => {
    const { html } = await consolePage(agent, '/admin');
    expect(html).toMatch(/id="recovered-tile" data-state="warning"/);
    expect(textOf(html, 'kpi-recovered-24h')).toBe('2');
    expect(textOf(html, 'kpi-recovered-total')).toBe('2 in total');
    // One of them two days old: still in the total, no longer in the last 24 h.
    const old = toDbTime(new Date(clock().getTime() - 2 * 86_400_000));
    const first = await ctx.db.kysely.selectFrom('reconcile_attempts').select('id').where('outcome', '=', 'recovered').orderBy('id').executeTakeFirstOrThrow();
    await ctx.db.kysely.updateTable('reconcile_attempts').set({ created_at: old }).where('id', '=', first.id).execute();
    const later = await consolePage(agent, '/admin?period=7d');
    expect(textOf(later.html, 'kpi-recovered-24h')).toBe('1');
    expect(textOf(later.html, 'kpi-recovered-total')).toBe('2 in total');
    expect(later.html).toMatch(/id="recovered-tile" data-state="warning"/);
    // Only old recoveries: counted in the total, no longer a warning.
    await ctx.db.kysely.updateTable('reconcile_attempts').set({ created_at: old }).where('outcome', '=', 'recovered').execute();
    const calm = await consolePage(agent, '/admin');
    expect(textOf(calm.html, 'kpi-recovered-24h')).toBe('0');
    expect(textOf(calm.html, 'kpi-recovered-total')).toBe('2 in total');
    expect(calm.html).toMatch(/id="recovered-tile" data-state="ok"/);
  });

  it('speaks Chinese: the tile, the button, the timeline entry, the flash', async () => {
    const zhDashboard = (await agent.get('/admin').set('Accept-Language', 'zh-CN')).text;
    for (const text of ['通过向网关查询找回的支付', '回调正在丢失']) expect(zhDashboard).toContain(text);
    const orderNo = (
      await ctx.db.kysely.selectFrom('payment_logs').select('order_no').where('kind', '=', 'query').orderBy('id', 'desc').executeTakeFirstOrThrow()
    ).order_no!;
    const zh = (await agent.get(`/admin/orders/${orderNo}?flash=sync_recovered`).set('Accept-Language', 'zh-CN')).text;
    for (const text of ['立即向网关查询', '向网关查询', '通过向网关查询发现', '已找回支付', '网关状态', '到期时间', '网关说该订单已支付'])
      expect(zh).toContain(text);
    expect(zh).not.toMatch(/undefined|admin_|reconcile_/); // no missing dictionary entry
  });
});

describe.each(ENGINES)('console reconciliation with an unreachable generic query API on %s', (engine) => {
  let ctx: TestContext;
  let agent: request.Agent;
  let gateway: Server;

  beforeAll(async () => {
    // The generic gateway's query URL answers 500: asking it fails.
    gateway = createServer((_req, res) => res.writeHead(500, { 'content-type': 'text/plain' }).end('<b>down</b>'));
    await new Promise<void>((resolve) => gateway.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(gateway.address() as AddressInfo).port}/query`;
    ctx = await createTestContext(engine, { env: { GENERIC_QUERY_URL: url } });
    agent = await signedInAgent(ctx.app, 'Rita');
  });
  afterAll(async () => {
    await ctx?.close();
    await new Promise((resolve) => gateway?.close(resolve));
  });

  it('the button is shown; a gateway error is an error flash, recorded on the timeline, the order unchanged', async () => {
    const orderNo = await createOrder(ctx, { order_no: uid('RE') });
    const { html, csrf } = await consolePage(agent, `/admin/orders/${orderNo}`);
    expect(html).toContain('id="sync-button"');
    const res = await agent.post(`/admin/orders/${orderNo}/sync`).type('form').send({ _csrf: csrf });
    expect(res.status).toBe(303);
    expect(res.headers.location).toBe(`/admin/orders/${orderNo}?flash=sync_gateway_error`);
    expect((await orderRow(ctx, orderNo)).status).toBe('pending');
    expect((await attemptRows(ctx, orderNo)).map((a) => [a.trigger, a.outcome])).toEqual([['manual', 'error']]);
    const audit = await auditRows(ctx, orderNo);
    expect(audit.map((a) => [a.actor, a.action])).toEqual([['Rita', 'order.sync']]);
    expect(JSON.parse(audit[0]!.new_value!)).toMatchObject({ outcome: 'error', status: 'pending' });

    const page = await consolePage(agent, res.headers.location!);
    expect(page.html).toMatch(/class="alert alert-danger[^"]*"[^>]*data-flash="sync_gateway_error"/);
    expect(page.html).toContain('The gateway could not be asked');
    const look = entry(page.html, 'reconcile');
    expect(look).toMatch(/data-outcome="error"/);
    expect(look).toContain('the gateway answered HTTP 500');
    // The answer's excerpt is escaped.
    expect(look).toContain('&lt;b&gt;down&lt;/b&gt;');
    expect(look).not.toContain('<b>down</b>');
  });
});
