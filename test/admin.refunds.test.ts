import type { ServerResponse } from 'node:http';
import request from 'supertest';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { refundCheckerOf } from '../src/app.ts';
import { consolePage, signedInAgent } from './helpers/admin.ts';
import { createTestContext, TEST_GATEWAY_SECRET, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';
import { gatewaySign, signed } from './helpers/gateway-signer.ts';
import { attrOf, createOrder, gatewayParams, uid, unescapeHtml } from './helpers/pages.ts';
import { startReceiver, type Received, type Receiver } from './helpers/receiver.ts';

/**
 * The console side of refunds: the order page's refund form (CSRF, confirmation, audit row committed with the refund,
 * every outcome and refusal as a flash), the refunds on the order's facts and timeline, refund entries in the inbox,
 * and the refunded status. The gateway is a generic refund stand-in on 127.0.0.1 that checks every request's
 * signature with the test's own signer.
 */

type Answer = (res: ServerResponse, form: Record<string, string>) => unknown;

const nowS = () => String(Math.floor(Date.now() / 1000));
let nonce = 0;
const nextNonce = () => `c${Date.now().toString(36)}${++nonce}`;

function formOf(entry: Received) {
  const form = Object.fromEntries(new URLSearchParams(entry.body)) as Record<string, string>;
  return { form, signatureOk: form.sign === gatewaySign(form, TEST_GATEWAY_SECRET, (form.sign_type ?? 'MD5') as 'MD5' | 'HMAC-SHA256') };
}

/** A signed answer to a refund query (A5 over the JSON fields). */
function signedAnswer(fields: Record<string, string>) {
  const body = { ...fields, timestamp: nowS(), sign_type: 'HMAC-SHA256' };
  return JSON.stringify({ ...body, sign: gatewaySign(body, TEST_GATEWAY_SECRET, 'HMAC-SHA256') });
}

/** The timeline entries' kinds, in page order. */
const kinds = (html: string) => [...html.matchAll(/<li class="timeline-item [^"]*" data-kind="(\w+)"/g)].map((m) => m[1]);
/** The HTML from the first occurrence of `marker` up to the next element opened with `until`. */
function section(html: string, marker: string, until: string): string {
  const start = html.indexOf(marker);
  expect(start, `no ${marker}`).toBeGreaterThan(-1);
  const next = html.indexOf(until, start + marker.length);
  return html.slice(start, next === -1 ? undefined : next);
}
const timelineEntry = (html: string, marker: string) => section(html, marker, '<li class="timeline-item');
const textOf = (html: string, id: string) => {
  const text = new RegExp(`id="${id}"[^>]*>([^<]*)<`).exec(html)?.[1]?.trim();
  return text === undefined ? undefined : unescapeHtml(text);
};

describe.each(ENGINES)('console refunds on %s', (engine) => {
  let ctx: TestContext;
  let gateway: Receiver;
  let agent: request.Agent;
  let answer: Answer;
  let queryAnswer: Answer;
  // The app's clock runs `offset` ms ahead of the wall clock: moving it makes pending refunds due for a look.
  let offset = 0;
  const clock = () => new Date(Date.now() + offset);

  beforeAll(async () => {
    gateway = await startReceiver(async (_n, res, entry) => {
      const { form, signatureOk } = formOf(entry);
      if (!signatureOk) return res.writeHead(401).end('bad sign');
      // A refund query carries refund_no but no amount.
      return form.refund_amount === undefined ? queryAnswer(res, form) : answer(res, form);
    });
    ctx = await createTestContext(engine, {
      env: { GENERIC_REFUND_URL: gateway.url, GENERIC_QUERY_URL: gateway.url, NOTIFY_TIMEOUT_MS: '1000', RECONCILE_AFTER: '1s', RECONCILE_SCHEDULE: '1s' },
      clock,
    });
    agent = await signedInAgent(ctx.app, 'Rita');
  });
  afterAll(async () => {
    await ctx?.close();
    await gateway?.close();
  });
  beforeEach(() => {
    answer = (res) => res.end('ok');
    queryAnswer = (res, form) => res.end(signedAnswer({ order_no: form.order_no!, refund_no: form.refund_no!, status: 'refund_pending' }));
  });

  const refundsSentFor = (orderNo: string) => gateway.received.map(formOf).filter((r) => r.form.refund_amount !== undefined && r.form.order_no === orderNo);
  const orderRow = (no: string) => ctx.db.kysely.selectFrom('orders').selectAll().where('order_no', '=', no).executeTakeFirstOrThrow();
  const refundRows = (no: string) => ctx.db.kysely.selectFrom('refunds').selectAll().where('order_no', '=', no).orderBy('id').execute();
  const auditRows = (no: string) => ctx.db.kysely.selectFrom('audit_log').selectAll().where('target', '=', `order:${no}`).orderBy('id').execute();
  const flaggedLog = (no: string, verdict: string) =>
    ctx.db.kysely
      .selectFrom('payment_logs')
      .select('id')
      .where('order_no', '=', no)
      .where('verdict', '=', verdict)
      .where('flagged', '=', 1)
      .executeTakeFirstOrThrow();

  /** A generic order paid through a signed /notify. */
  async function paidOrder(amount = '10.00', prefix = 'CR'): Promise<string> {
    const orderNo = await createOrder(ctx, { order_no: uid(prefix), amount });
    const paid = await request(ctx.app)
      .post('/notify')
      .type('form')
      .send(gatewayParams(orderNo, { amount, transaction_id: `T-${orderNo}` }));
    expect(paid.status, paid.text).toBe(200);
    return orderNo;
  }
  const notify = (params: Record<string, string>) =>
    request(ctx.app)
      .post('/notify')
      .type('form')
      .send(signed({ notify_type: 'refund', timestamp: nowS(), nonce: nextNonce(), currency: 'CNY', ...params }, TEST_GATEWAY_SECRET, 'HMAC-SHA256'));
  const refundNotice = (orderNo: string, refundNo: string, amount: string, status = 'refund_success') =>
    notify({ order_no: orderNo, refund_no: refundNo, refund_amount: amount, status });

  /** The order page with its refund form's fields (undefined when there is no form). */
  async function refundForm(orderNo: string, as = agent) {
    const { html, csrf } = await consolePage(as, `/admin/orders/${orderNo}`);
    return { html, csrf, amount: attrOf(html, 'refund-amount', 'value'), refundNo: attrOf(html, 'refund-no', 'value') };
  }
  const post = (orderNo: string, fields: Record<string, string>, as = agent) => as.post(`/admin/orders/${orderNo}/refund`).type('form').send(fields);
  /** Fills the page's form and submits it, confirmed; returns the flash key it redirects with. */
  async function refundFromConsole(orderNo: string, fields: Record<string, string> = {}, as = agent): Promise<string | undefined> {
    const form = await refundForm(orderNo, as);
    expect(form.refundNo, 'no refund form').toBeDefined();
    const res = await post(orderNo, { _csrf: form.csrf, amount: form.amount!, refund_no: form.refundNo!, reason: '', confirm: 'yes', ...fields }, as);
    expect(res.status, res.text.slice(0, 300)).toBe(303);
    expect(res.headers.location).toMatch(new RegExp(`^/admin/orders/${orderNo}\\?flash=\\w+#refunds$`));
    return /flash=(\w+)/.exec(res.headers.location!)?.[1];
  }

  it('a paid order of a refundable gateway has the form, its amount defaulting to the rest (amount − refunded − reserved)', async () => {
    const orderNo = await paidOrder('10.00');
    let form = await refundForm(orderNo);
    expect(form.amount).toBe('10.00');
    expect(form.html).toMatch(/<form method="post" action="\/admin\/orders\/[^"]+\/refund" class="[^"]*" id="refund-form">/);
    expect(form.refundNo).toMatch(/^R\d{25}$/);
    expect(form.html).toMatch(/<input class="form-check-input" type="checkbox" id="refund-confirm" name="confirm" value="yes" required>/);
    expect(form.html).toMatch(/id="refund-button"[^>]*>Refund</);
    expect(textOf(form.html, 'order-refunded')).toBe('0.00 CNY');
    expect(form.html).toContain('id="refunds-none"');

    // 3.00 pending (reserved) and 2.00 refunded: 5.00 is left.
    expect((await ctx.api('post', `/api/orders/${orderNo}/refunds`).send({ amount: '3.00', refund_no: `A3-${orderNo}` })).status).toBe(201);
    expect((await ctx.api('post', `/api/orders/${orderNo}/refunds`).send({ amount: '2.00', refund_no: `A2-${orderNo}` })).status).toBe(201);
    expect((await refundNotice(orderNo, `A2-${orderNo}`, '2.00')).status).toBe(200);
    form = await refundForm(orderNo);
    expect(form.amount).toBe('5.00');
    expect(textOf(form.html, 'order-refunded')).toBe('2.00 CNY');
    expect(textOf(form.html, 'order-refund-reserved')).toBe('3.00 CNY pending');
    expect(textOf(form.html, 'refund-rest')).toBe('5.00 CNY');
    const rows = [...form.html.matchAll(/<tr data-refund-no="([^"]+)" data-status="(\w+)">/g)].map((m) => [m[1], m[2]]);
    expect(rows).toEqual([
      [`A2-${orderNo}`, 'succeeded'],
      [`A3-${orderNo}`, 'pending'],
    ]);
    // A refund asked for by the API names no operator.
    expect(section(form.html, `data-refund-no="A3-${orderNo}"`, '</tr>')).toContain('<td data-field="requested_by">API</td>');

    // Everything refunded or reserved: no form, a note instead.
    expect((await ctx.api('post', `/api/orders/${orderNo}/refunds`).send({ amount: '5.00' })).status).toBe(201);
    const full = await refundForm(orderNo);
    expect(full.refundNo).toBeUndefined();
    expect(full.html).toContain('id="refund-nothing-left"');
  });

  it('no form for orders that cannot be refunded; a crafted POST answers with a flash and changes nothing', async () => {
    const pending = await createOrder(ctx, { order_no: uid('CP'), amount: '4.00' });
    const closed = await createOrder(ctx, { order_no: uid('CC'), amount: '4.00' });
    expect((await ctx.api('post', `/api/orders/${closed}/close`)).status).toBe(200);
    // Paid through WeChat Pay, whose refund API is not configured here.
    const wechat = await createOrder(ctx, { order_no: uid('CW'), amount: '4.00', payment_method: 'wechatpay' });
    await ctx.db.kysely
      .updateTable('orders')
      .set({ status: 'paid', transaction_id: `W-${wechat}`, paid_at: '2026-12-01 10:00:00.000' })
      .where('order_no', '=', wechat)
      .execute();

    for (const [orderNo, flash] of [
      [pending, 'refund_invalid_state'],
      [closed, 'refund_invalid_state'],
      [wechat, 'refund_not_refundable'],
    ] as const) {
      const { html, csrf, refundNo } = await refundForm(orderNo);
      expect(refundNo).toBeUndefined();
      expect(html).not.toContain('id="refund-form"');
      if (orderNo === wechat) expect(html).toContain('id="refund-unavailable"');
      const res = await post(orderNo, { _csrf: csrf, amount: '1.00', refund_no: uid('RX'), confirm: 'yes' });
      expect(res.headers.location).toBe(`/admin/orders/${orderNo}?flash=${flash}#refunds`);
      const page = await consolePage(agent, res.headers.location!);
      expect(page.html).toMatch(new RegExp(`class="alert alert-danger[^"]*"[^>]*data-flash="${flash}"`));
      expect(await refundRows(orderNo)).toEqual([]);
      expect(await auditRows(orderNo)).toEqual([]);
      expect(refundsSentFor(orderNo)).toEqual([]);
    }
    expect(unescapeHtml((await consolePage(agent, `/admin/orders/${wechat}?flash=refund_not_refundable`)).html)).toContain(
      'Not refunded: this order’s gateway cannot refund through this service (its refund API is not configured).',
    );
  });

  it('CSRF: without the form’s token, or with a forged one, 403 and nothing is refunded or sent', async () => {
    const orderNo = await paidOrder('6.00');
    const { refundNo } = await refundForm(orderNo);
    const fields = { amount: '6.00', refund_no: refundNo!, confirm: 'yes' };
    expect((await post(orderNo, fields)).status).toBe(403);
    expect((await post(orderNo, { ...fields, _csrf: 'forged' })).status).toBe(403);
    // A token issued to another session does not pass either.
    const other = await signedInAgent(ctx.app, 'Mallory');
    const foreign = await refundForm(orderNo, other);
    expect((await post(orderNo, { ...fields, _csrf: foreign.csrf })).status).toBe(403);
    expect(await refundRows(orderNo)).toEqual([]);
    expect(await auditRows(orderNo)).toEqual([]);
    expect(refundsSentFor(orderNo)).toEqual([]);
    expect((await orderRow(orderNo)).refund_reserved_minor).toBe(0);
  });

  it('a refund from the console: sent signed to the gateway, recorded with its audit row naming the operator, then settled by the notification', async () => {
    const orderNo = await paidOrder('8.00');
    const form = await refundForm(orderNo);
    const res = await post(orderNo, { _csrf: form.csrf, amount: '3.50', refund_no: form.refundNo!, reason: 'damaged in transit', confirm: 'yes' });
    expect(res.headers.location).toBe(`/admin/orders/${orderNo}?flash=refund_created#refunds`);

    const [refund] = await refundRows(orderNo);
    expect(refund).toMatchObject({
      refund_no: form.refundNo,
      amount_minor: 350,
      status: 'pending',
      reason: 'damaged in transit',
      requested_by: 'console:Rita',
      gateway: 'generic',
    });
    const sent = refundsSentFor(orderNo);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.signatureOk).toBe(true);
    expect(sent[0]!.form).toMatchObject({ order_no: orderNo, refund_no: form.refundNo, refund_amount: '3.50', currency: 'CNY' });
    const audit = await auditRows(orderNo);
    expect(audit.map((a) => [a.actor, a.action])).toEqual([['Rita', 'order.refund']]);
    expect(JSON.parse(audit[0]!.old_value!)).toEqual({ status: 'paid', refunded_amount: '0.00' });
    expect(JSON.parse(audit[0]!.new_value!)).toEqual({ refund_no: form.refundNo, amount: '3.50', currency: 'CNY', reason: 'damaged in transit' });

    let page = await consolePage(agent, `/admin/orders/${orderNo}?flash=refund_created`);
    expect(page.html).toMatch(/class="alert alert-success[^"]*"[^>]*data-flash="refund_created"/);
    expect(unescapeHtml(page.html)).toContain('The refund was sent to the gateway, which accepted it: it stays pending until the gateway confirms it.');
    expect(kinds(page.html)).toEqual(['created', 'payment', 'audit', 'reconcile']);
    expect(timelineEntry(page.html, 'data-kind="audit"')).toContain(`Refund ${form.refundNo} of 3.50 CNY requested by Rita`);
    const sentEntry = timelineEntry(page.html, 'data-kind="reconcile"');
    expect(sentEntry).toMatch(/data-trigger="request" data-action="refund" data-outcome="refund_pending"/);
    expect(sentEntry).toContain('<strong>Refund sent</strong>');
    expect(sentEntry).toMatch(/data-field="outcome">Refund pending</);
    expect(sentEntry).toMatch(/data-field="trigger">Requested \(console or API\)</);
    expect(sentEntry).toMatch(/data-field="gateway_state">Accepted</);
    expect(sentEntry).toContain(`refund ${form.refundNo}: pending`);
    expect(textOf(page.html, 'order-refund-reserved')).toBe('3.50 CNY pending');
    expect(textOf(page.html, 'refund-rest')).toBe('4.50 CNY');
    expect(attrOf(page.html, 'refund-amount', 'value')).toBe('4.50');
    // A fresh form: a new refund number, so the next refund is not taken for a repeat of this one.
    expect(attrOf(page.html, 'refund-no', 'value')).not.toBe(form.refundNo);

    expect((await refundNotice(orderNo, form.refundNo!, '3.50')).status).toBe(200);
    page = await consolePage(agent, `/admin/orders/${orderNo}`);
    expect(kinds(page.html)).toEqual(['created', 'payment', 'audit', 'reconcile', 'payment']);
    const notice = timelineEntry(page.html, `data-kind="payment" data-gateway-kind="notify" data-verdict="applied" data-refund="yes"`);
    expect(notice).toContain('<strong>Refund notification</strong>');
    expect(notice).toMatch(/id="reported-status-\d+">Refund succeeded</);
    expect(notice).not.toContain('Gateway notification');
    // The payment that came first is still labelled as a payment.
    expect(timelineEntry(page.html, 'data-kind="payment"')).toContain('<strong>Gateway notification</strong>');
    const row = section(page.html, `data-refund-no="${form.refundNo}"`, '</tr>');
    expect(row).toContain('data-status="succeeded"');
    expect(row).toMatch(/<span class="badge refund-badge refund-succeeded">Succeeded<\/span>/);
    expect(row).toContain('<td data-field="reason" class="text-break">damaged in transit</td>');
    expect(row).toContain('<td data-field="requested_by">Rita</td>');
    expect(row).toMatch(/data-field="completed_at">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d</);
    expect(textOf(page.html, 'order-refunded')).toBe('3.50 CNY');
    expect(page.html).not.toContain('id="order-refund-reserved"');
    expect(page.html).toMatch(/id="order-status"><span class="badge status-badge status-paid"/);
  });

  it('the same form posted twice refunds once; reused for another amount it is refused', async () => {
    const orderNo = await paidOrder('9.00');
    const form = await refundForm(orderNo);
    const fields = { _csrf: form.csrf, amount: '2.00', refund_no: form.refundNo!, reason: 'twice', confirm: 'yes' };
    expect((await post(orderNo, fields)).headers.location).toBe(`/admin/orders/${orderNo}?flash=refund_created#refunds`);
    expect((await post(orderNo, fields)).headers.location).toBe(`/admin/orders/${orderNo}?flash=refund_repeated#refunds`);
    expect((await post(orderNo, { ...fields, amount: '2.50' })).headers.location).toBe(`/admin/orders/${orderNo}?flash=refund_exists#refunds`);
    expect(await refundRows(orderNo)).toHaveLength(1);
    expect(refundsSentFor(orderNo)).toHaveLength(1);
    expect((await auditRows(orderNo)).map((a) => a.action)).toEqual(['order.refund']);
    expect((await orderRow(orderNo)).refund_reserved_minor).toBe(200);
  });

  it('each refusal is a flash on the order page: unconfirmed, invalid amount or reason, more than the rest; nothing recorded', async () => {
    const orderNo = await paidOrder('5.00');
    const form = await refundForm(orderNo);
    const base = { _csrf: form.csrf, refund_no: form.refundNo!, amount: '1.00', confirm: 'yes' };
    const cases: Array<[Record<string, string>, string, string]> = [
      [{ confirm: '' }, 'refund_unconfirmed', 'warning'],
      [{ confirm: 'no' }, 'refund_unconfirmed', 'warning'],
      [{ amount: 'abc' }, 'refund_invalid', 'danger'],
      [{ amount: '0' }, 'refund_invalid', 'danger'],
      [{ amount: '-1.00' }, 'refund_invalid', 'danger'],
      [{ amount: '1.234' }, 'refund_invalid', 'danger'],
      [{ amount: '' }, 'refund_invalid', 'danger'],
      [{ reason: 'x'.repeat(257) }, 'refund_invalid', 'danger'],
      [{ refund_no: 'not a number!' }, 'refund_invalid', 'danger'],
      [{ amount: '5.01' }, 'refund_exceeds_paid', 'danger'],
    ];
    for (const [change, flash, tone] of cases) {
      const res = await post(orderNo, { ...base, ...change });
      expect(res.headers.location, JSON.stringify(change)).toBe(`/admin/orders/${orderNo}?flash=${flash}#refunds`);
      const page = await consolePage(agent, res.headers.location!);
      expect(page.html).toMatch(new RegExp(`class="alert alert-${tone}[^"]*"[^>]*data-flash="${flash}"`));
    }
    const { confirm: _dropped, ...unconfirmed } = base;
    expect((await post(orderNo, unconfirmed)).headers.location).toBe(`/admin/orders/${orderNo}?flash=refund_unconfirmed#refunds`);
    expect(await refundRows(orderNo)).toEqual([]);
    expect(await auditRows(orderNo)).toEqual([]);
    expect(refundsSentFor(orderNo)).toEqual([]);
    expect(await orderRow(orderNo)).toMatchObject({ status: 'paid', refund_reserved_minor: 0, refunded_minor: 0 });
    const page = unescapeHtml((await consolePage(agent, `/admin/orders/${orderNo}?flash=refund_exceeds_paid`)).html);
    expect(page).toContain('Not refunded: the amount is more than can still be refunded (paid, less refunded and pending refunds).');
    // Nothing went wrong: the form still offers the whole amount.
    expect(attrOf(page, 'refund-amount', 'value')).toBe('5.00');
  });

  it('outcomes as flashes: succeeded at once, refused by the gateway (its reason escaped), unknown then settled by the loop', async () => {
    // The gateway's notification arrives before its answer: succeeded by the time the page comes back.
    const quick = await paidOrder('4.00');
    answer = async (res, form) => {
      expect((await refundNotice(form.order_no!, form.refund_no!, form.refund_amount!)).status).toBe(200);
      res.end('ok');
    };
    expect(await refundFromConsole(quick)).toBe('refund_succeeded');
    expect((await orderRow(quick)).status).toBe('refunded');
    let page = await consolePage(agent, `/admin/orders/${quick}?flash=refund_succeeded`);
    expect(page.html).toMatch(/class="alert alert-success[^"]*"[^>]*data-flash="refund_succeeded"/);
    expect(page.html).toMatch(/id="order-status"><span class="badge status-badge status-refunded" data-status="refunded">Refunded</);
    expect(page.html).not.toContain('id="refund-form"');

    // Refused: failed, the amount refundable again, the gateway's words shown escaped.
    const refused = await paidOrder('4.00');
    answer = (res) => res.writeHead(400).end('<b>insufficient</b> merchant balance & "funds"');
    expect(await refundFromConsole(refused, { reason: '<script>alert("r")</script>' })).toBe('refund_failed');
    page = await consolePage(agent, `/admin/orders/${refused}?flash=refund_failed`);
    expect(page.html).toMatch(/class="alert alert-danger[^"]*"[^>]*data-flash="refund_failed"/);
    const row = section(page.html, 'data-refund-no=', '</tr>');
    expect(row).toContain('data-status="failed"');
    expect(row).toContain('<td data-field="failure_reason" class="text-break">&lt;b&gt;insufficient&lt;/b&gt; merchant balance &amp; &#34;funds&#34;</td>');
    expect(row).toContain('<td data-field="reason" class="text-break">&lt;script&gt;alert(&#34;r&#34;)&lt;/script&gt;</td>');
    expect(page.html).not.toContain('<script>alert');
    expect(page.html).not.toContain('<b>insufficient');
    expect(timelineEntry(page.html, 'data-kind="reconcile"')).toMatch(/data-outcome="refund_failed"[\s\S]*data-field="outcome">Refund failed</);
    expect(attrOf(page.html, 'refund-amount', 'value')).toBe('4.00');

    // Unknown (5xx): pending with the amount reserved; the loop asks, the gateway says it succeeded.
    const unknown = await paidOrder('4.00');
    answer = (res) => res.writeHead(502).end('bad gateway');
    expect(await refundFromConsole(unknown, { amount: '1.00' })).toBe('refund_pending');
    page = await consolePage(agent, `/admin/orders/${unknown}?flash=refund_pending`);
    expect(page.html).toMatch(/class="alert alert-warning[^"]*"[^>]*data-flash="refund_pending"/);
    expect(timelineEntry(page.html, 'data-kind="reconcile"')).toMatch(/data-outcome="refund_unknown"[\s\S]*data-field="gateway_state">no answer</);
    const [pending] = await refundRows(unknown);
    queryAnswer = (res, form) =>
      res.end(
        signedAnswer(
          form.refund_no === pending!.refund_no
            ? { order_no: unknown, refund_no: form.refund_no, status: 'refund_success', refund_amount: '1.00', currency: 'CNY' }
            : { order_no: form.order_no!, refund_no: form.refund_no!, status: 'refund_pending' },
        ),
      );
    offset += 2_000;
    await refundCheckerOf(ctx.app).runOnce();
    expect((await refundRows(unknown))[0]).toMatchObject({ status: 'succeeded' });
    page = await consolePage(agent, `/admin/orders/${unknown}`);
    expect(kinds(page.html)).toEqual(['created', 'payment', 'audit', 'reconcile', 'reconcile']);
    const asked = page.html.slice(page.html.lastIndexOf('data-kind="reconcile"'));
    expect(asked).toMatch(/data-trigger="schedule" data-action="refund_query" data-outcome="refund_succeeded"/);
    expect(asked).toContain('<strong>Refund asked</strong>');
    expect(asked).toMatch(/data-field="outcome">Refund succeeded</);
    expect(asked).toMatch(/data-field="action">Refund query</);
    expect(textOf(page.html, 'order-refunded')).toBe('1.00 CNY');
  });

  it('an operator name at the limit still fits the refund’s requester (console: and the name, cut to 64 characters)', async () => {
    const name = 'o'.repeat(64);
    const long = await signedInAgent(ctx.app, name);
    const orderNo = await paidOrder('3.00');
    expect(await refundFromConsole(orderNo, { amount: '1.00' }, long)).toBe('refund_created');
    const [refund] = await refundRows(orderNo);
    expect(refund!.requested_by).toBe(`console:${'o'.repeat(56)}`);
    expect((await auditRows(orderNo))[0]!.actor).toBe(name);
  });

  it('the inbox gives refund entries their own kinds; payment entries keep theirs', async () => {
    // Unknown refund: a signed notification about a refund this service never made.
    const ghostOrder = await paidOrder('2.00');
    expect((await refundNotice(ghostOrder, `NOPE-${ghostOrder}`, '2.00')).status).toBe(404);
    // Refund amount mismatch: the notification's amount differs from the pending refund's.
    const mismatch = await paidOrder('2.00');
    expect(await refundFromConsole(mismatch, { amount: '1.00' })).toBe('refund_created');
    const [mismatched] = await refundRows(mismatch);
    expect((await refundNotice(mismatch, mismatched!.refund_no, '1.50')).status).toBe(409);
    // Contradicting result: refused (failed), then the gateway says it succeeded.
    const contra = await paidOrder('2.00');
    answer = (res) => res.writeHead(400).end('refused');
    expect(await refundFromConsole(contra)).toBe('refund_failed');
    const [contradicted] = await refundRows(contra);
    expect((await refundNotice(contra, contradicted!.refund_no, '2.00')).status).toBe(409);
    // A payment's amount mismatch and a second payment stay what they were.
    const payMismatch = await createOrder(ctx, { order_no: uid('CM') });
    expect(
      (
        await request(ctx.app)
          .post('/notify')
          .type('form')
          .send(gatewayParams(payMismatch, { amount: '12.35' }))
      ).status,
    ).toBe(409);
    const second = await paidOrder('12.34');
    expect((await request(ctx.app).post('/notify').type('form').send(gatewayParams(second))).status).toBe(409);

    const expected: Array<[number, string, string, string]> = [
      [Number((await flaggedLog(ghostOrder, 'unknown_refund')).id), 'unknown_refund', 'Unknown refund', '未知退款'],
      [Number((await flaggedLog(mismatch, 'amount_mismatch')).id), 'refund_amount_mismatch', 'Refund amount mismatch', '退款金额不符'],
      [Number((await flaggedLog(contra, 'invalid_state')).id), 'refund_contradiction', 'Contradicting refund result', '退款结果矛盾'],
      [Number((await flaggedLog(payMismatch, 'amount_mismatch')).id), 'amount_mismatch', 'Amount mismatch', '金额不符'],
      [Number((await flaggedLog(second, 'invalid_state')).id), 'double_payment', 'Second payment', '重复支付'],
    ];
    const en = (await consolePage(agent, '/admin/inbox?filter=all')).html;
    // Another operator reads in Chinese (the language sticks to the session's cookie).
    const zh = (await consolePage(await signedInAgent(ctx.app, 'Zhang'), '/admin/inbox?filter=all&lang=zh-CN')).html;
    for (const [id, kind, label, zhLabel] of expected) {
      expect(en, kind).toContain(`inbox-entry inbox-${kind}" id="entry-${id}"`);
      const entry = section(en, `id="entry-${id}"`, '<article');
      expect(entry).toContain(`<span class="badge kind-badge kind-${kind}">${label}</span>`);
      expect(section(zh, `id="entry-${id}"`, '<article')).toContain(`<span class="badge kind-badge kind-${kind}">${zhLabel}</span>`);
    }
    // The contradiction on the order's timeline: flagged, labelled as a refund.
    const page = await consolePage(agent, `/admin/orders/${contra}`);
    expect(page.html).toMatch(
      /class="timeline-item tl-payment tl-refund tl-flagged" data-kind="payment" data-gateway-kind="notify" data-verdict="invalid_state" data-refund="yes"/,
    );
    const flagged = timelineEntry(page.html, 'data-verdict="invalid_state" data-refund="yes"');
    expect(flagged).toContain('<strong>Refund notification</strong>');
    expect(flagged).toContain(`Refund ${contradicted!.refund_no} is already failed; the gateway now says succeeded (flagged)`);
  });

  it('the refunded status: order list filter and badge; zh-CN labels on the order page', async () => {
    const orderNo = await paidOrder('1.00', 'CF');
    answer = async (res, form) => {
      expect((await refundNotice(form.order_no!, form.refund_no!, form.refund_amount!)).status).toBe(200);
      res.end('ok');
    };
    expect(await refundFromConsole(orderNo, { reason: '退货' })).toBe('refund_succeeded');
    const list = await consolePage(agent, `/admin/orders?status=refunded&q=${orderNo}`);
    expect(list.html).toMatch(/<option value="refunded" selected>Refunded<\/option>/);
    expect(list.html).toContain(`<tr data-order-no="${orderNo}">`);
    expect(list.html).toMatch(/<span class="badge status-badge status-refunded" data-status="refunded">Refunded<\/span>/);
    expect((await consolePage(agent, `/admin/orders?status=paid&q=${orderNo}`)).html).not.toContain(`<tr data-order-no="${orderNo}">`);

    const zh = (await consolePage(await signedInAgent(ctx.app, 'Zhang'), `/admin/orders/${orderNo}?lang=zh-CN`)).html;
    expect(zh).toMatch(/status-refunded" data-status="refunded">已退款</);
    expect(zh).toContain('<strong>退款通知</strong>');
    expect(zh).toContain('<strong>发起退款</strong>');
    expect(zh).toMatch(/<span class="badge refund-badge refund-succeeded">退款成功<\/span>/);
    expect(zh).toContain('<td data-field="reason" class="text-break">退货</td>');
  });
});
