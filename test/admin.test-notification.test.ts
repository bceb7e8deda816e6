import { createHash } from 'node:crypto';
import request from 'supertest';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consolePage, signedInAgent } from './helpers/admin.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';
import { createDeliveryContext, type DeliveryContext } from './helpers/delivery-context.ts';
import { ENGINES } from './helpers/engines.ts';
import { createOrder, outboxRows, orderRow, uid, unescapeHtml } from './helpers/pages.ts';
import { startReceiver, type Receiver } from './helpers/receiver.ts';

/** The console's "send a test notification": a signed A7 body of type "test", the exact exchange shown, nothing changed. */

/** Independent A7 check: MD5 over sorted non-empty fields except sign, numbers as JSON writes them. */
function md5Sign(body: Record<string, unknown>, secret: string): string {
  const text = Object.keys(body)
    .filter((k) => k !== 'sign' && body[k] !== null && body[k] !== '')
    .sort()
    .map((k) => `${k}=${typeof body[k] === 'string' ? body[k] : JSON.stringify(body[k])}`)
    .join('&');
  return createHash('md5').update(`${text}&key=${secret}`).digest('hex').toUpperCase();
}

/** The unescaped text of the `<pre id="…">` block. */
const preOf = (html: string, id: string) => {
  const match = new RegExp(`<pre[^>]*\\bid="${id}"[^>]*>(?:<code>)?([\\s\\S]*?)(?:</code>)?</pre>`).exec(html);
  return match ? unescapeHtml(match[1]!) : undefined;
};

const auditRows = (ctx: TestContext, orderNo: string) =>
  ctx.db.kysely.selectFrom('audit_log').selectAll().where('target', '=', `order:${orderNo}`).orderBy('id').execute();

async function sendTest(agent: request.Agent, orderNo: string, fields: Record<string, string> = {}) {
  const { csrf } = await consolePage(agent, `/admin/orders/${orderNo}`);
  return agent
    .post(`/admin/orders/${orderNo}/test-notification`)
    .type('form')
    .send({ _csrf: csrf, ...fields });
}

describe.each(ENGINES)('console test notification on %s', (engine) => {
  let ctx: DeliveryContext;
  let merchant: Receiver;
  let other: Receiver;
  let agent: request.Agent;

  beforeAll(async () => {
    ctx = await createDeliveryContext(engine);
    merchant = await startReceiver((_n, res) => {
      res.setHeader('x-merchant', 'yes');
      res.end('success');
    });
    other = await startReceiver((_n, res) => {
      res.statusCode = 500;
      res.end('x'.repeat(3000));
    });
    agent = await signedInAgent(ctx.app, 'Alice');
  });
  afterAll(async () => {
    await Promise.all([merchant?.close(), other?.close()]);
    await ctx?.close();
  });

  it('signs a "test" event as deliveries are signed, sends it to the notify URL, shows the exact exchange, and changes nothing', async () => {
    const orderNo = await ctx.paidOrder(merchant.url, '12.34');
    await ctx.waitForStatus(orderNo, 'delivered');
    const [real] = await merchant.waitFor(1);
    const orderBefore = await orderRow(ctx, orderNo);
    const outboxBefore = await outboxRows(ctx, orderNo);
    const attemptsBefore = await ctx.attempts(orderNo);

    const res = await sendTest(agent, orderNo);
    expect(res.status, res.text.slice(0, 300)).toBe(303);
    const location = res.headers.location as string;
    expect(location).toMatch(new RegExp(`^/admin/orders/${orderNo}\\?test=\\d+#test-notification-result$`));

    const [, got] = await merchant.waitFor(2);
    const body = JSON.parse(got!.body) as Record<string, unknown>;
    expect(Object.keys(body)).toEqual([
      'event_id',
      'type',
      'order_no',
      'transaction_id',
      'amount',
      'currency',
      'status',
      'paid_at',
      'seq',
      'timestamp',
      'nonce',
      'sign_type',
      'sign',
    ]);
    expect(body).toMatchObject({
      type: 'test',
      order_no: orderNo,
      transaction_id: `T-${orderNo}`,
      amount: '12.34',
      currency: 'CNY',
      status: 'paid',
      seq: 1,
      sign_type: 'MD5',
    });
    expect(body.event_id).toMatch(/^evt_[0-9a-f]{32}$/);
    expect(body.event_id).not.toBe(JSON.parse(real!.body).event_id);
    expect(body.sign).toBe(md5Sign(body, ctx.config.secrets.NOTIFY_SECRET));
    const headers = {
      'webhook-id': String(got!.headers['webhook-id']),
      'webhook-timestamp': String(got!.headers['webhook-timestamp']),
      'webhook-signature': String(got!.headers['webhook-signature']),
    };
    expect(new Webhook(ctx.config.secrets.NOTIFY_SECRET).verify(got!.body, headers)).toMatchObject({ event_id: body.event_id });
    expect(headers['webhook-id']).toBe(body.event_id);

    const page = (await agent.get(location)).text;
    expect(page).toContain('id="test-notification-result"');
    const sent = preOf(page, 'test-request')!;
    expect(sent.split('\n')[0]).toBe(`POST ${merchant.url}`);
    for (const name of ['content-type', 'user-agent', 'webhook-id', 'webhook-timestamp', 'webhook-signature'])
      expect(sent).toContain(`\n${name}: ${String(got!.headers[name])}\n`);
    expect(sent.endsWith(`\n\n${got!.body}`)).toBe(true);
    const answer = preOf(page, 'test-response')!;
    expect(answer.split('\n')[0]).toBe('HTTP 200');
    expect(answer).toContain('\nx-merchant: yes\n');
    expect(answer.endsWith('\n\nsuccess')).toBe(true);
    expect(page).toMatch(/data-field="test-duration">\d+ ms</);
    expect(page).toMatch(/data-field="test-outcome">[^<]*Delivered/);

    // Nothing about the order changed: no state, no outbox event, no delivery attempt.
    expect(await orderRow(ctx, orderNo)).toEqual(orderBefore);
    expect(await outboxRows(ctx, orderNo)).toEqual(outboxBefore);
    expect(await ctx.attempts(orderNo)).toEqual(attemptsBefore);
    // Recorded in the audit log, with who sent it, and on the timeline.
    const audit = await auditRows(ctx, orderNo);
    expect(audit.map((a) => [a.action, a.actor])).toEqual([['order.test_notification', 'Alice']]);
    expect(JSON.parse(audit[0]!.new_value!)).toMatchObject({ url: merchant.url, event_id: body.event_id, status_code: 200 });
    expect(page).toMatch(/data-action="order.test_notification"[\s\S]*?Test notification sent by Alice/);
  });

  it('goes to a URL the operator gives, shows the first KiB of the answer, and refuses what is not an http(s) URL', async () => {
    const orderNo = await createOrder(ctx, { order_no: uid('TN') });
    const res = await sendTest(agent, orderNo, { url: other.url });
    expect(res.status).toBe(303);
    const [got] = await other.waitFor(1);
    expect(JSON.parse(got!.body)).toMatchObject({ type: 'test', order_no: orderNo, status: 'pending', transaction_id: null, seq: 0 });
    const page = (await agent.get(res.headers.location as string)).text;
    const answer = preOf(page, 'test-response')!;
    expect(answer.split('\n')[0]).toBe('HTTP 500');
    expect(answer.split('\n\n').at(-1)).toBe('x'.repeat(1024));
    expect(page).toMatch(/data-field="test-outcome">[^<]*HTTP 500/);
    expect(preOf(page, 'test-request')!.split('\n')[0]).toBe(`POST ${other.url}`);

    for (const url of ['ftp://example.com/x', 'not a url', 'javascript:alert(1)']) {
      const refused = await sendTest(agent, orderNo, { url });
      expect(refused.status).toBe(303);
      expect(refused.headers.location).toBe(`/admin/orders/${orderNo}?flash=test_url_invalid#test-notification`);
    }
    // No notify URL and none given: nothing to send to.
    const none = await sendTest(agent, orderNo);
    expect(none.headers.location).toBe(`/admin/orders/${orderNo}?flash=test_no_target#test-notification`);
    expect(other.received).toHaveLength(1);
    expect((await auditRows(ctx, orderNo)).map((a) => a.action)).toEqual(['order.test_notification']);
    expect(await outboxRows(ctx, orderNo)).toHaveLength(0);
  });

  it('shows a result only on the order it belongs to', async () => {
    const a = await createOrder(ctx, { order_no: uid('TA'), notify_url: merchant.url });
    const b = await createOrder(ctx, { order_no: uid('TB') });
    const sent = await sendTest(agent, a);
    const id = /test=(\d+)/.exec(sent.headers.location as string)![1];
    expect((await agent.get(`/admin/orders/${a}?test=${id}`)).text).toContain('id="test-notification-result"');
    expect((await agent.get(`/admin/orders/${b}?test=${id}`)).text).not.toContain('id="test-notification-result"');
    expect((await agent.get(`/admin/orders/${a}?test=abc`)).status).toBe(200);
  });

  it('needs the form token and a signed-in operator', async () => {
    const orderNo = await createOrder(ctx, { order_no: uid('TC'), notify_url: other.url });
    const before = other.received.length;
    expect((await agent.post(`/admin/orders/${orderNo}/test-notification`).type('form').send({})).status).toBe(403);
    const stranger = request.agent(ctx.app);
    const login = await stranger.get('/admin/login');
    const token = /name="_csrf" value="([^"]+)"/.exec(login.text)![1]!;
    const anonymous = await stranger
      .post(`/admin/orders/${orderNo}/test-notification`)
      .type('form')
      .send({ _csrf: unescapeHtml(token) });
    expect([401, 403, 303]).toContain(anonymous.status);
    expect(String(anonymous.headers.location ?? '')).not.toContain('test=');
    await new Promise((r) => setTimeout(r, 100));
    expect(other.received).toHaveLength(before);
  });
});

describe.each(ENGINES)('console test notification with private networks refused on %s', (engine) => {
  let ctx: TestContext;
  let receiver: Receiver;
  beforeAll(async () => {
    ctx = await createTestContext(engine, { env: { NOTIFY_ALLOW_PRIVATE_NETWORKS: 'false' } });
    receiver = await startReceiver();
  });
  afterAll(async () => {
    await receiver?.close();
    await ctx?.close();
  });

  it('goes through the deliveries’ address guard: a loopback target is never contacted', async () => {
    const orderNo = await createOrder(ctx, { order_no: uid('TP'), notify_url: receiver.url });
    const agent = await signedInAgent(ctx.app);
    const res = await sendTest(agent, orderNo);
    expect(res.status).toBe(303);
    const page = (await agent.get(res.headers.location as string)).text;
    expect(page).toMatch(/data-field="test-outcome">[^<]*destination_not_allowed/);
    expect(preOf(page, 'test-response')).toBeUndefined();
    expect(page).toMatch(/id="test-error"[^>]*>[^<]*(not allowed|private|loopback)/i);
    await new Promise((r) => setTimeout(r, 200));
    expect(receiver.received).toHaveLength(0);
    expect((await auditRows(ctx, orderNo)).map((a) => a.action)).toEqual(['order.test_notification']);
  });
});
