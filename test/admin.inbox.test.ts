import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consolePage, signedInAgent } from './helpers/admin.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';
import { createOrder, gatewayParams, uid } from './helpers/pages.ts';

/** Issue 6 item 4: the inbox of flagged callbacks, and reviews with notes (stored, shown, audit-logged). */

const entries = (html: string) =>
  [
    ...html.matchAll(
      /<article class="card border-0 shadow-sm inbox-entry inbox-(\w+)" id="entry-(\d+)" data-id="\d+" data-verdict="(\w+)" data-reviewed="(yes|no)">/g,
    ),
  ].map((m) => ({
    kind: m[1]!,
    id: Number(m[2]),
    verdict: m[3]!,
    reviewed: m[4] === 'yes',
  }));

describe.each(ENGINES)('console inbox on %s', (engine) => {
  let ctx: TestContext;
  let agent: request.Agent;
  let now = Date.now();
  const ghost = uid('GHOST');
  let ids: Record<string, number> = {};

  beforeAll(async () => {
    ctx = await createTestContext(engine, { clock: () => new Date(now) });
    const notify = (params: Record<string, string>) => request(ctx.app).post('/notify').type('form').send(params);
    const tick = () => (now += 1000);
    // An unknown order, an amount mismatch, a second transaction for a paid order, a late payment on a closed order.
    expect((await notify(gatewayParams(ghost, { attach: '<img src=x onerror=alert(1)>' }))).status).toBe(404);
    tick();
    const mismatch = await createOrder(ctx);
    expect((await notify(gatewayParams(mismatch, { amount: '12.35' }))).status).toBe(409);
    tick();
    const paid = await createOrder(ctx);
    expect((await notify(gatewayParams(paid))).status).toBe(200);
    expect((await notify(gatewayParams(paid))).status).toBe(409);
    tick();
    const late = await createOrder(ctx);
    expect((await ctx.api('post', `/api/orders/${late}/close`)).status).toBe(200);
    expect((await notify(gatewayParams(late))).status).toBe(200);
    // Not flagged: a bad signature and a plain duplicate stay out of the inbox.
    expect((await notify({ ...gatewayParams(paid), sign: 'X' })).status).toBe(401);
    const logs = await ctx.db.kysely.selectFrom('payment_logs').select(['id', 'verdict', 'flagged', 'order_no']).where('flagged', '=', 1).execute();
    ids = Object.fromEntries(logs.map((l) => [l.verdict, Number(l.id)]));
    agent = await signedInAgent(ctx.app, 'Rita');
  });
  afterAll(() => ctx.close());

  it('lists the flagged callbacks newest first, each with its kind, and counts them in the navigation', async () => {
    const { html } = await consolePage(agent, '/admin/inbox');
    expect(entries(html)).toEqual([
      { kind: 'late_payment', id: ids.applied, verdict: 'applied', reviewed: false },
      { kind: 'double_payment', id: ids.invalid_state, verdict: 'invalid_state', reviewed: false },
      { kind: 'amount_mismatch', id: ids.amount_mismatch, verdict: 'amount_mismatch', reviewed: false },
      { kind: 'unknown_order', id: ids.unknown_order, verdict: 'unknown_order', reviewed: false },
    ]);
    expect(html).toMatch(/id="nav-badge-inbox"[^>]*>4</);
    const ghostEntry = html.slice(html.indexOf(`id="entry-${ids.unknown_order}"`));
    expect(ghostEntry).toContain(`data-field="order_no">${ghost} <span class="badge text-bg-light border">no such order</span>`);
    expect(ghostEntry).toContain('Unknown order');
    expect(ghostEntry).not.toContain('<img src=x');
    expect(ghostEntry).toContain('attach = &lt;img src=x onerror=alert(1)&gt;');
    // Entries of existing orders link to their timeline.
    expect(html).toMatch(new RegExp(`id="entry-${ids.amount_mismatch}"[\\s\\S]*?<a href="/admin/orders/PG`));
    expect(html).toContain('Late payment (closed order)');
    expect(html).toContain('Second payment');
  });

  it('marks an entry reviewed with a note: stored, shown (escaped), audit-logged, moved to the Reviewed tab', async () => {
    const { csrf } = await consolePage(agent, '/admin/inbox');
    const id = ids.unknown_order!;
    const empty = await agent.post(`/admin/inbox/${id}/review`).type('form').send({ _csrf: csrf, note: '   ' });
    expect(empty.headers.location).toBe('/admin/inbox?flash=review_invalid');
    now += 60_000;
    const note = 'Gateway test traffic <b>not ours</b>; told the PSP.';
    const res = await agent.post(`/admin/inbox/${id}/review`).type('form').send({ _csrf: csrf, note });
    expect(res.status).toBe(303);
    expect(res.headers.location).toBe(`/admin/inbox?flash=reviewed#entry-${id}`);

    const review = await ctx.db.kysely.selectFrom('payment_log_reviews').selectAll().execute();
    expect(review).toEqual([expect.objectContaining({ reviewed_by: 'Rita', note })]);
    expect(Number(review[0]!.payment_log_id)).toBe(id);
    const audit = await ctx.db.kysely.selectFrom('audit_log').selectAll().where('action', '=', 'payment_log.review').execute();
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ actor: 'Rita', target: `payment_log:${id}`, old_value: null, created_at: review[0]!.reviewed_at });
    expect(JSON.parse(audit[0]!.new_value!)).toEqual({ note, verdict: 'unknown_order', order_no: ghost });
    expect(audit[0]!.remote_ip).toMatch(/127\.0\.0\.1/);

    const open = await consolePage(agent, '/admin/inbox?flash=reviewed');
    expect(open.html).toContain('Marked as reviewed.');
    expect(entries(open.html).map((e) => e.id)).not.toContain(id);
    expect(open.html).toMatch(/id="nav-badge-inbox"[^>]*>3</);
    const done = await consolePage(agent, '/admin/inbox?filter=reviewed');
    expect(entries(done.html)).toEqual([{ kind: 'unknown_order', id, verdict: 'unknown_order', reviewed: true }]);
    expect(done.html).toContain('Gateway test traffic &lt;b&gt;not ours&lt;/b&gt;; told the PSP.');
    expect(done.html).toMatch(/Reviewed by Rita at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC/);
    const all = await consolePage(agent, '/admin/inbox?filter=all');
    expect(entries(all.html)).toHaveLength(4);
    expect(all.html).toMatch(/data-filter="all">All <span class="badge rounded-pill text-bg-light">4</);
  });

  it('a second review of the same entry is refused; unknown or unflagged entries are 404', async () => {
    const { csrf } = await consolePage(agent, '/admin/inbox');
    const again = await agent.post(`/admin/inbox/${ids.unknown_order}/review?filter=all`).type('form').send({ _csrf: csrf, note: 'again' });
    expect(again.headers.location).toBe(`/admin/inbox?filter=all&flash=already_reviewed#entry-${ids.unknown_order}`);
    expect(await ctx.db.kysely.selectFrom('payment_log_reviews').selectAll().execute()).toHaveLength(1);
    expect((await agent.post('/admin/inbox/999999/review').type('form').send({ _csrf: csrf, note: 'x' })).status).toBe(404);
    const unflagged = await ctx.db.kysely.selectFrom('payment_logs').select('id').where('flagged', '=', 0).executeTakeFirstOrThrow();
    expect((await agent.post(`/admin/inbox/${unflagged.id}/review`).type('form').send({ _csrf: csrf, note: 'x' })).status).toBe(404);
    expect((await agent.post('/admin/inbox/abc/review').type('form').send({ _csrf: csrf, note: 'x' })).status).toBe(400);
    expect(
      await ctx.db.kysely.selectFrom('audit_log').selectAll().where('action', 'not like', 'login.%').where('action', 'not like', 'operator.%').execute(),
    ).toHaveLength(1);
  });

  it('the review shows on the order timeline too', async () => {
    const { csrf } = await consolePage(agent, '/admin/inbox');
    await agent.post(`/admin/inbox/${ids.amount_mismatch}/review`).type('form').send({ _csrf: csrf, note: 'Merchant changed the price; refunded.' });
    const log = await ctx.db.kysely.selectFrom('payment_logs').select('order_no').where('id', '=', ids.amount_mismatch!).executeTakeFirstOrThrow();
    const { html } = await consolePage(agent, `/admin/orders/${log.order_no}`);
    expect(html).toMatch(/Reviewed by Rita at [^:]+:\d\d:\d\d UTC: <span class="text-break">Merchant changed the price; refunded.<\/span>/);
  });

  it('speaks Chinese', async () => {
    const zh = (await agent.get('/admin/inbox?filter=all&lang=zh-CN')).text;
    for (const text of ['异常回调', '待审核', '已审核', '未知订单', '金额不符', '重复支付', '迟到支付（订单已关闭）', '标记为已审核', '原始请求'])
      expect(zh).toContain(text);
    expect(zh).not.toMatch(/undefined|admin_|verdict_/); // no missing dictionary entry
    await agent.get('/admin/inbox?lang=en');
  });
});
