import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reconcilerOf } from '../src/app.ts';
import { createTestContext, TEST_GATEWAY_SECRET, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';
import { gatewaySign, signed } from './helpers/gateway-signer.ts';
import { startGenericQueryStandin, type GenericQueryStandin } from './helpers/generic-query-standin.ts';
import { html, outboxRows, paymentLogs, uid } from './helpers/pages.ts';

/** Order expiry on create, the schedule of looks with a controllable clock, expiry without a query API, and the sandbox's lost notification. */

const T0 = Date.parse('2026-03-01T10:00:00.000Z');
const MIN = 60_000;
const iso = (ms: number) => new Date(ms).toISOString();
const dbTime = (ms: number) => iso(ms).replace('T', ' ').replace('Z', '');
const SETTINGS = { RECONCILE_AFTER: '1m', RECONCILE_SCHEDULE: '2m,5m', ORDER_TTL: '30m' };

describe.each(ENGINES)('order expiry and the reconcile schedule on %s', (engine) => {
  let now = T0;
  const clock = () => new Date(now);
  let standin: GenericQueryStandin;
  let queried: TestContext; // generic with GENERIC_QUERY_URL
  let plain: TestContext; // generic without a query API
  beforeAll(async () => {
    standin = await startGenericQueryStandin({ secret: TEST_GATEWAY_SECRET, now: clock });
    queried = await createTestContext(engine, { clock, env: { ...SETTINGS, GENERIC_QUERY_URL: standin.url } });
    plain = await createTestContext(engine, { clock, env: SETTINGS });
  });
  afterAll(async () => {
    await queried?.close();
    await plain?.close();
    await standin?.close();
  });

  const create = (ctx: TestContext, fields: Record<string, unknown> = {}) =>
    ctx.api('post', '/api/orders').send({ order_no: uid('EX'), amount: '12.34', notify_url: 'https://merchant.example/notify', ...fields });
  async function order(ctx: TestContext, fields: Record<string, unknown> = {}): Promise<string> {
    const res = await create(ctx, fields);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.data.order_no as string;
  }
  const row = (ctx: TestContext, no: string) => ctx.db.kysely.selectFrom('orders').selectAll().where('order_no', '=', no).executeTakeFirstOrThrow();
  const attempts = (ctx: TestContext, no: string) =>
    ctx.db.kysely.selectFrom('reconcile_attempts').selectAll().where('order_no', '=', no).orderBy('id').execute();
  const at = async (ctx: TestContext, ms: number) => {
    now = ms;
    return reconcilerOf(ctx.app).runOnce();
  };

  describe('POST /api/orders: expires_in / expires_at', () => {
    it.each([60, 3600, 604800])('expires_in %i → expires_at = created_at + that many seconds', async (seconds) => {
      const res = await create(plain, { expires_in: seconds });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      expect(res.body.data).toMatchObject({ created_at: iso(now), expires_at: iso(now + seconds * 1000) });
      expect(await row(plain, res.body.data.order_no)).toMatchObject({ expires_at: dbTime(now + seconds * 1000), reconcile_at: dbTime(now + MIN) });
    });

    it('expires_at in the future (any offset) is taken as given, in UTC; without either the default is ORDER_TTL', async () => {
      const given = await create(plain, { expires_at: '2026-03-01T20:00:00+08:00' });
      expect(given.status, JSON.stringify(given.body)).toBe(201);
      expect(given.body.data.expires_at).toBe('2026-03-01T12:00:00.000Z');
      const byDefault = await create(plain);
      expect(byDefault.body.data).toMatchObject({ created_at: iso(now), expires_at: iso(now + 30 * MIN) });
    });

    it('a form body works too', async () => {
      const order_no = uid('EF');
      const res = await plain.api('post', '/api/orders').type('form').send({ order_no, amount: '5.00', expires_in: '120' });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      expect(res.body.data).toMatchObject({ order_no, expires_at: iso(now + 120_000) });
    });

    it.each<[string, Record<string, unknown>, string]>([
      ['both given', { expires_in: 600, expires_at: '2026-03-02T10:00:00Z' }, 'expires_at'],
      ['expires_in 59', { expires_in: 59 }, 'expires_in'],
      ['expires_in 604801', { expires_in: 604801 }, 'expires_in'],
      ['expires_in "abc"', { expires_in: 'abc' }, 'expires_in'],
      ['expires_in 90.5', { expires_in: 90.5 }, 'expires_in'],
      ['expires_at not a time', { expires_at: 'tomorrow' }, 'expires_at'],
      ['expires_at in the past', { expires_at: iso(T0 - 1000) }, 'expires_at'],
    ])('%s → 400 validation_failed, nothing created', async (_name, fields, path) => {
      const order_no = uid('EV');
      const res = await create(plain, { order_no, ...fields });
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.body).toMatchObject({ success: false, code: 'validation_failed' });
      expect((res.body.errors as Array<{ path: string }>).map((e) => e.path)).toContain(path);
      expect(await plain.db.kysely.selectFrom('orders').select('id').where('order_no', '=', order_no).executeTakeFirst()).toBeUndefined();
    });
  });

  it('schedule: looks at +1m, +3m, +8m, then at the expiry (+30m) where it is closed here with order.closed', async () => {
    const t = now;
    const no = await order(queried);
    expect(await row(queried, no)).toMatchObject({ reconcile_at: dbTime(t + MIN), reconcile_step: 0, expires_at: dbTime(t + 30 * MIN) });
    const steps: Array<[number, string | null, number]> = [
      [1, dbTime(t + 3 * MIN), 1],
      [3, dbTime(t + 8 * MIN), 2],
      [8, dbTime(t + 30 * MIN), 2],
    ];
    for (const [minute, next, step] of steps) {
      const asked = standin.askedAbout(no);
      await at(queried, t + minute * MIN - 1);
      expect(standin.askedAbout(no), `not before +${minute}m`).toBe(asked);
      await at(queried, t + minute * MIN);
      expect(standin.askedAbout(no), `at +${minute}m`).toBe(asked + 1);
      expect(await row(queried, no)).toMatchObject({ status: 'pending', reconcile_at: next, reconcile_step: step, reconcile_lease: null });
    }
    await at(queried, t + 30 * MIN - 1);
    expect(standin.askedAbout(no)).toBe(3);
    expect((await row(queried, no)).status).toBe('pending');
    await at(queried, t + 30 * MIN);
    expect(standin.askedAbout(no)).toBe(4);
    expect(await row(queried, no)).toMatchObject({ status: 'closed', seq: 1, reconcile_at: null, reconcile_lease: null });
    expect((await outboxRows(queried, no)).map((e) => [e.type, e.seq])).toEqual([['order.closed', 1]]);
    expect((await attempts(queried, no)).map((a) => [a.trigger, a.action, a.gateway_state, a.outcome])).toEqual([
      ['schedule', 'query', 'pending', 'unchanged'],
      ['schedule', 'query', 'pending', 'unchanged'],
      ['schedule', 'query', 'pending', 'unchanged'],
      ['expiry', 'query', 'pending', 'unchanged'],
      ['expiry', 'close', 'pending', 'expired'],
    ]);
    await at(queried, t + 24 * 60 * MIN);
    expect(standin.askedAbout(no)).toBe(4);
  });

  it('without a query API: never asked, closed at its expires_at with order.closed; paid and closed orders are never touched', async () => {
    const t = now;
    const lasting = await order(plain);
    const short = await order(plain, { expires_in: 120 });
    const paid = await order(plain);
    const pay = signed({ order_no: paid, transaction_id: `TX-${paid}`, amount: '12.34', status: 'success' }, TEST_GATEWAY_SECRET);
    expect((await request(plain.app).post('/notify').type('form').send(pay)).status).toBe(200);
    const closed = await order(plain);
    expect((await plain.api('post', `/api/orders/${closed}/close`)).status).toBe(200);

    await at(plain, t + MIN);
    expect(await row(plain, lasting)).toMatchObject({ status: 'pending', reconcile_at: dbTime(t + 30 * MIN), reconcile_lease: null });
    await at(plain, t + 2 * MIN - 1);
    expect((await row(plain, short)).status).toBe('pending');
    await at(plain, t + 2 * MIN);
    expect(await row(plain, short)).toMatchObject({ status: 'closed', seq: 1, reconcile_at: null });
    await at(plain, t + 30 * MIN - 1);
    expect((await row(plain, lasting)).status).toBe('pending');
    await at(plain, t + 30 * MIN);
    await at(plain, t + 24 * 60 * MIN);
    for (const no of [lasting, short]) {
      expect(await row(plain, no)).toMatchObject({ status: 'closed', seq: 1, reconcile_at: null, reconcile_lease: null });
      expect((await outboxRows(plain, no)).map((e) => [e.type, e.seq])).toEqual([['order.closed', 1]]);
      expect((await attempts(plain, no)).map((a) => [a.trigger, a.action, a.gateway_state, a.outcome])).toEqual([['expiry', 'close', null, 'expired']]);
    }
    for (const [no, status, type] of [
      [paid, 'paid', 'order.paid'],
      [closed, 'closed', 'order.closed'],
    ] as const) {
      expect(await row(plain, no)).toMatchObject({ status, seq: 1 });
      expect((await outboxRows(plain, no)).map((e) => e.type)).toEqual([type]);
      expect(await attempts(plain, no)).toEqual([]);
    }
  });

  it('POST /api/orders/:order_no/sync → 409 not_queryable for generic without GENERIC_QUERY_URL', async () => {
    const no = await order(plain);
    const res = await plain.api('post', `/api/orders/${no}/sync`);
    expect([res.status, res.body.code]).toEqual([409, 'not_queryable']);
    expect(await attempts(plain, no)).toEqual([]);
  });

  describe('sandbox', () => {
    const tokenOf = (page: string) => /name="_csrf" value="([^"]+)"/.exec(page)![1]!;

    it('"lose the notification": pending, nothing logged; after RECONCILE_AFTER the loop finds it paid with the sandbox’s transaction id', async () => {
      const agent = request.agent(plain.app);
      const home = html(await agent.get('/'), 200);
      const created = await agent
        .post('/sandbox/orders')
        .type('form')
        .send({ _csrf: tokenOf(home), subject: 'Demo', amount: '9.99', currency: 'CNY' });
      expect(created.status).toBe(303);
      const no = /\/sandbox\/pay\/([A-Za-z0-9_-]+)$/.exec(created.headers.location as string)![1]!;
      const t = now;
      const checkout = html(await agent.get(`/sandbox/pay/${no}`), 200);
      expect(checkout).toMatch(/id="lose-button"/);
      const lost = await agent
        .post(`/sandbox/pay/${no}`)
        .type('form')
        .send({ _csrf: tokenOf(checkout), action: 'lose' });
      expect([lost.status, lost.headers.location]).toEqual([303, `/sandbox/pay/${no}?lost=1`]);
      expect(await row(plain, no)).toMatchObject({ status: 'pending', seq: 0, transaction_id: null });
      expect(await paymentLogs(plain, no)).toEqual([]);
      const books = await plain.db.kysely.selectFrom('sandbox_payments').selectAll().where('order_no', '=', no).executeTakeFirstOrThrow();
      expect(books).toMatchObject({ status: 'success', notification_lost: 1 });
      expect(html(await agent.get(`/sandbox/pay/${no}?lost=1`), 200)).toMatch(/id="lost-notice"/);

      await at(plain, t + MIN - 1);
      expect((await row(plain, no)).status).toBe('pending');
      await at(plain, t + MIN);
      expect(await row(plain, no)).toMatchObject({ status: 'paid', seq: 1, transaction_id: books.transaction_id });
      expect((await paymentLogs(plain, no)).map((l) => [l.gateway, l.kind, l.verdict, l.transaction_id])).toEqual([
        ['sandbox', 'query', 'applied', books.transaction_id],
      ]);
      expect((await attempts(plain, no)).map((a) => [a.gateway, a.outcome])).toEqual([['sandbox', 'recovered']]);
      expect(html(await agent.get(`/sandbox/pay/${no}?lost=1`), 200)).toMatch(/id="recovered-notice"/);
    });

    it('POST /sandbox/query answers the protocol over HTTP, signed; a bad signature → 401, a stale request → 400', async () => {
      const books = await plain.db.kysely.selectFrom('sandbox_payments').selectAll().executeTakeFirstOrThrow();
      const ask = (orderNo: string, seconds = Math.floor(now / 1000), key = TEST_GATEWAY_SECRET) =>
        request(plain.app)
          .post('/sandbox/query')
          .type('form')
          .send(signed({ order_no: orderNo, timestamp: String(seconds), nonce: uid('n') }, key, 'HMAC-SHA256'));
      const res = await ask(books.order_no);
      expect(res.status, res.text).toBe(200);
      const { sign, ...fields } = res.body as Record<string, string>;
      expect(gatewaySign(fields, TEST_GATEWAY_SECRET, fields.sign_type as 'HMAC-SHA256')).toBe(sign);
      expect(fields).toEqual({
        order_no: books.order_no,
        status: 'success',
        amount: '9.99',
        currency: 'CNY',
        transaction_id: books.transaction_id,
        timestamp: String(Math.floor(now / 1000)),
        sign_type: 'HMAC-SHA256',
      });
      const unknown = await ask('NEVER-PAID');
      expect([unknown.status, unknown.body.status, unknown.body.order_no]).toEqual([200, 'pending', 'NEVER-PAID']);
      const forged = await ask(books.order_no, undefined, 'not-the-gateway-secret');
      expect([forged.status, forged.body.error]).toEqual([401, 'bad_signature']);
      expect(forged.body.transaction_id).toBeUndefined();
      const stale = await ask(books.order_no, Math.floor(now / 1000) - 301);
      expect([stale.status, stale.body.error]).toEqual([400, 'stale']);
    });
  });
});
