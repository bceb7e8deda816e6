import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, reconcilerOf, stopApp } from '../src/app.ts';
import { metricsOf } from '../src/metrics/metrics.registry.ts';
import { createLogger } from '../src/shared/logger.ts';
import { createTestContext, TEST_GATEWAY_SECRET, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';
import { signed } from './helpers/gateway-signer.ts';
import { startGenericQueryStandin, type GenericQueryStandin, type StandinBehaviour } from './helpers/generic-query-standin.ts';
import { outboxRows, paymentLogs, uid } from './helpers/pages.ts';

/** The reconcile loop with the generic query protocol against a local gateway: what each answer does to the order. */

const T0 = Date.parse('2026-03-01T10:00:00.000Z');
const MIN = 60_000;
const dbTime = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace('Z', '');

describe.each(ENGINES)('reconcile loop (generic query protocol) on %s', (engine) => {
  let now = T0;
  const clock = () => new Date(now);
  let standin: GenericQueryStandin;
  let ctx: TestContext;
  beforeAll(async () => {
    standin = await startGenericQueryStandin({ secret: TEST_GATEWAY_SECRET, now: clock });
    const env = { GENERIC_QUERY_URL: standin.url, RECONCILE_AFTER: '1m', RECONCILE_SCHEDULE: '2m,5m', ORDER_TTL: '30m', NOTIFY_TIMEOUT_MS: '400' };
    ctx = await createTestContext(engine, { clock, env });
  });
  afterAll(async () => {
    await ctx?.close();
    await standin?.close();
  });

  const order = async (order_no = uid('RL')) => {
    const amount = '12.34';
    const res = await ctx.api('post', '/api/orders').send({ order_no, amount, currency: 'CNY', notify_url: 'https://merchant.example/notify' });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return order_no;
  };
  const row = (no: string) => ctx.db.kysely.selectFrom('orders').selectAll().where('order_no', '=', no).executeTakeFirstOrThrow();
  const attempts = (no: string) => ctx.db.kysely.selectFrom('reconcile_attempts').selectAll().where('order_no', '=', no).orderBy('id').execute();
  const advance = async (ms: number) => {
    now += ms;
    return reconcilerOf(ctx.app).runOnce();
  };
  const counter = async (name: string, labels: Record<string, string>) => {
    const metric = metricsOf(ctx.app)!.registry.getSingleMetric(name)!;
    const values = (await metric.get()).values;
    return values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))?.value ?? 0;
  };
  const paid = (no: string, amount = '12.34', currency = 'CNY') => standin.setTrade(no, { status: 'success', amount, currency, transactionId: `TX-${no}` });

  /** Pending, untouched: seq 0, no event, no payment logged. */
  async function expectUntouched(no: string) {
    expect(await row(no)).toMatchObject({ status: 'pending', transaction_id: null, paid_at: null, seq: 0 });
    expect(await outboxRows(ctx, no)).toHaveLength(0);
  }

  it('paid at the gateway → recovered once (payment log kind query, order.paid event, metrics); a second look applies nothing', async () => {
    const no = await order();
    paid(no);
    const [recovered, queries] = [
      await counter('payments_recovered_total', { gateway: 'generic' }),
      await counter('reconcile_queries_total', { outcome: 'recovered' }),
    ];
    await advance(MIN);
    expect(standin.askedAbout(no)).toBe(1);
    expect(await row(no)).toMatchObject({ status: 'paid', transaction_id: `TX-${no}`, seq: 1, reconcile_at: null, reconcile_lease: null });
    const logs = await paymentLogs(ctx, no);
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatchObject({ gateway: 'generic', kind: 'query', verdict: 'applied', transaction_id: `TX-${no}`, amount_minor: 1234, flagged: 0 });
    const events = await outboxRows(ctx, no);
    expect(events.map((e) => [e.type, e.seq])).toEqual([['order.paid', 1]]);
    expect((await attempts(no)).map((a) => [a.trigger, a.action, a.gateway_state, a.outcome])).toEqual([['schedule', 'query', 'paid', 'recovered']]);
    expect(await counter('payments_recovered_total', { gateway: 'generic' })).toBe(recovered + 1);
    expect(await counter('reconcile_queries_total', { outcome: 'recovered' })).toBe(queries + 1);

    const again = await ctx.api('post', `/api/orders/${no}/sync`);
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(again.body.data).toMatchObject({ status: 'paid', reconcile: { gateway: 'generic', gateway_state: 'paid', outcome: 'already_paid' } });
    expect((await row(no)).seq).toBe(1);
    expect((await paymentLogs(ctx, no)).filter((l) => l.verdict === 'applied')).toHaveLength(1);
    expect(await outboxRows(ctx, no)).toHaveLength(1);
    expect(await counter('payments_recovered_total', { gateway: 'generic' })).toBe(recovered + 1);
    expect(await advance(60 * MIN)).toBe(0);
    expect(standin.askedAbout(no)).toBe(2);
  });

  it('the questions are signed per the protocol; the stand-in refuses forged or stale ones (so its checks are real)', async () => {
    expect(standin.requests.length).toBeGreaterThan(0);
    for (const r of standin.requests) {
      expect(r).toMatchObject({ signed: true, fresh: true });
      expect(Object.keys(r.form).sort()).toEqual(['nonce', 'order_no', 'sign', 'sign_type', 'timestamp']);
      expect(r.form.sign_type).toBe('HMAC-SHA256');
    }
    expect(new Set(standin.requests.map((r) => r.form.nonce)).size).toBe(standin.requests.length);
    const ask = (form: Record<string, string>) => fetch(standin.url, { method: 'POST', body: new URLSearchParams(form) }).then((r) => r.status);
    const fields = { order_no: 'X1', timestamp: String(Math.floor(now / 1000)), nonce: 'abc' };
    expect(await ask(signed(fields, TEST_GATEWAY_SECRET, 'HMAC-SHA256'))).toBe(200);
    expect(await ask(signed(fields, 'another-secret-entirely', 'HMAC-SHA256'))).toBe(401);
    expect(await ask(fields)).toBe(401);
    expect(await ask(signed({ ...fields, timestamp: String(Math.floor(now / 1000) - 301) }, TEST_GATEWAY_SECRET))).toBe(400);
  });

  it.each(['pending', 'failed'] as const)('%s at the gateway → untouched, asked again at the next step', async (status) => {
    const no = await order();
    standin.setTrade(no, { status });
    await advance(MIN);
    await expectUntouched(no);
    expect(await row(no)).toMatchObject({ reconcile_at: dbTime(now + 2 * MIN), reconcile_step: 1, reconcile_lease: null });
    expect((await attempts(no)).map((a) => [a.gateway_state, a.outcome])).toEqual([[status, 'unchanged']]);
    await advance(2 * MIN - 1);
    expect(standin.askedAbout(no)).toBe(1);
    await advance(1);
    expect(standin.askedAbout(no)).toBe(2);
    await expectUntouched(no);
    expect(await row(no)).toMatchObject({ reconcile_at: dbTime(now + 5 * MIN), reconcile_step: 2 });
  });

  it('closed at the gateway → closed here with its order.closed event, never asked again', async () => {
    const no = await order();
    standin.setTrade(no, { status: 'closed' });
    await advance(MIN);
    expect(await row(no)).toMatchObject({ status: 'closed', seq: 1, reconcile_at: null, reconcile_lease: null });
    expect((await outboxRows(ctx, no)).map((e) => [e.type, e.seq])).toEqual([['order.closed', 1]]);
    expect((await attempts(no)).map((a) => [a.gateway_state, a.outcome])).toEqual([['closed', 'closed']]);
    await advance(60 * MIN);
    expect(standin.askedAbout(no)).toBe(1);
  });

  it.each([
    ['amount', '99.99', 'CNY'],
    ['currency', '12.34', 'USD'],
  ])('%s mismatch → flagged in the inbox, the order unchanged and not asked again', async (_what, amount, currency) => {
    const no = await order();
    paid(no, amount, currency);
    await advance(MIN);
    await expectUntouched(no);
    expect(await row(no)).toMatchObject({ reconcile_at: null, reconcile_lease: null });
    const logs = await paymentLogs(ctx, no);
    expect(logs.map((l) => [l.kind, l.verdict, l.flagged])).toEqual([['query', 'amount_mismatch', 1]]);
    expect((await attempts(no)).map((a) => a.outcome)).toEqual(['mismatch']);
    const inbox = await ctx.api('get', `/api/orders/${no}`);
    expect(inbox.body.data.payments).toMatchObject([{ kind: 'query', verdict: 'amount_mismatch', flagged: true }]);
    await advance(60 * MIN);
    expect(standin.askedAbout(no)).toBe(1);
  });

  it.each<[StandinBehaviour, RegExp]>([
    ['mis-signed', /^bad_signature: the answer signature does not match/],
    ['unsigned', /^bad_signature: the answer is not signed/],
    ['garbage', /^malformed: the answer is not JSON/],
    ['http-500', /^http_status: the gateway answered HTTP 500/],
    ['hang', /^timeout: no answer within 400 ms/],
    ['stale-timestamp', /^malformed: the answer's timestamp is not within 300 s/],
    ['other-order', /^malformed: the answer is about order \S+-OTHER, not /],
  ])('%s answer → nothing changes, attempt outcome error, asked again at the next step and recovered once healthy', async (behaviour, message) => {
    const no = await order();
    // The order an 'other-order' answer is about: it exists, and stays as it is too.
    const other = await order(`${no}-OTHER`);
    paid(no);
    standin.setBehaviour(behaviour, no);
    const errors = await counter('reconcile_queries_total', { gateway: 'generic', outcome: 'error' });
    await advance(MIN);
    expect(standin.askedAbout(no)).toBe(1);
    await expectUntouched(no);
    await expectUntouched(other);
    expect(await paymentLogs(ctx, no)).toHaveLength(0);
    expect(await row(no)).toMatchObject({ reconcile_at: dbTime(now + 2 * MIN), reconcile_step: 1, reconcile_lease: null });
    const [attempt] = await attempts(no);
    expect(attempt).toMatchObject({ outcome: 'error', gateway_state: null, trigger: 'schedule' });
    expect(attempt!.message).toMatch(message);
    expect(await counter('reconcile_queries_total', { gateway: 'generic', outcome: 'error' })).toBe(errors + 1);

    standin.setBehaviour('normal', no);
    await advance(2 * MIN);
    expect(standin.askedAbout(no)).toBe(2);
    expect(await row(no)).toMatchObject({ status: 'paid', transaction_id: `TX-${no}`, seq: 1 });
    expect((await paymentLogs(ctx, no)).map((l) => [l.kind, l.verdict])).toEqual([['query', 'applied']]);
    expect(await outboxRows(ctx, no)).toHaveLength(1);
  });

  describe('POST /api/orders/:order_no/sync', () => {
    it('asks now: 200 with the order and what the gateway said', async () => {
      const no = await order();
      paid(no);
      const res = await ctx.api('post', `/api/orders/${no}/sync`);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body).toMatchObject({ success: true, message: 'asked the gateway' });
      expect(res.body.data).toMatchObject({ order_no: no, status: 'paid', transaction_id: `TX-${no}`, amount: '12.34', currency: 'CNY' });
      expect(res.body.data.reconcile).toEqual({ gateway: 'generic', gateway_state: 'paid', outcome: 'recovered', message: 'payment applied' });
      expect((await attempts(no)).map((a) => [a.trigger, a.outcome])).toEqual([['manual', 'recovered']]);
    });

    it('404 for an unknown order, 401 without an API key, 502 gateway_error when the gateway answers 500 (nothing changes)', async () => {
      const unknown = await ctx.api('post', '/api/orders/NO-SUCH-ORDER/sync');
      expect([unknown.status, unknown.body.code]).toEqual([404, 'not_found']);
      const no = await order();
      expect((await request(ctx.app).post(`/api/orders/${no}/sync`)).status).toBe(401);
      expect(standin.askedAbout(no)).toBe(0);
      paid(no);
      standin.setBehaviour('http-500', no);
      const res = await ctx.api('post', `/api/orders/${no}/sync`);
      expect([res.status, res.body.code]).toEqual([502, 'gateway_error']);
      expect(res.body.message).toMatch(/HTTP 500/);
      await expectUntouched(no);
      expect((await attempts(no)).map((a) => [a.trigger, a.outcome])).toEqual([['manual', 'error']]);
    });
  });

  describe('graceful stop', () => {
    // A second app over the same database, so that stopping its reconciler leaves the main one running.
    const instance = () => createApp({ config: ctx.config, db: ctx.db, logger: createLogger('silent'), clock });

    it('stop() waits for a look in flight, which then finishes normally', async () => {
      const app = instance();
      const no = await order();
      paid(no);
      standin.setBehaviour('hang', no);
      now += MIN;
      const running = reconcilerOf(app).runOnce();
      await standin.waitForRequest(no);
      let stopped: boolean | undefined;
      const stopping = reconcilerOf(app)
        .stop(10_000)
        .then((v) => (stopped = v));
      await new Promise((r) => setTimeout(r, 100));
      expect(stopped).toBeUndefined();
      standin.release();
      expect(await stopping).toBe(true);
      await running;
      expect(await row(no)).toMatchObject({ status: 'paid', seq: 1, reconcile_lease: null, reconcile_at: null });
      await stopApp(app);
    });

    it('stop(waitMs) too short → gives the lease back (due now, no lease) and leases nothing more', async () => {
      const app = instance();
      const no = await order();
      standin.setBehaviour('hang', no);
      now += MIN;
      const running = reconcilerOf(app).runOnce();
      await standin.waitForRequest(no);
      expect(await row(no)).toMatchObject({ reconcile_lease: reconcilerOf(app).owner, reconcile_at: dbTime(now + 3 * 400 + 5000) });
      expect(await reconcilerOf(app).stop(20)).toBe(false);
      expect(await row(no)).toMatchObject({ status: 'pending', reconcile_lease: null, reconcile_at: dbTime(now) });
      await running;
      expect(standin.askedAbout(no)).toBe(1);
      expect(await row(no)).toMatchObject({ status: 'pending', reconcile_lease: null, reconcile_at: dbTime(now), seq: 0 });
      standin.setBehaviour('normal', no);
      await advance(0);
      expect(standin.askedAbout(no)).toBe(2);
      await stopApp(app);
    });
  });
});
