import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetrics, metricsOf } from '../src/metrics/metrics.registry.ts';
import { DeliveryMetrics } from '../src/notifications/delivery.metrics.ts';
import { toDbTime } from '../src/shared/time.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';
import { uid } from './helpers/pages.ts';

const TOKEN = 'metrics-token-0123456789abcdef';

/** The value of one sample of the Prometheus text format, or undefined when the series is absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.keys(labels).length === Object.keys(found).length && Object.entries(labels).every(([k, v]) => found[k] === v)) {
      return match[3] === 'Nan' || match[3] === 'NaN' ? Number.NaN : Number(match[3]);
    }
  }
  return undefined;
}

async function scrape(ctx: TestContext, token?: string): Promise<string> {
  const req = request(ctx.app).get('/metrics');
  const res = await (token ? req.set('Authorization', `Bearer ${token}`) : req);
  expect(res.status, res.text.slice(0, 300)).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  expect(res.headers['cache-control']).toBe('no-store');
  return res.text;
}

describe.each(ENGINES)('GET /metrics on %s', (engine) => {
  let ctx: TestContext;
  const loop = new DeliveryMetrics();
  beforeAll(async () => {
    ctx = await createTestContext(engine, { deps: { deliveryMetrics: loop } });
  });
  afterAll(() => ctx?.close());

  it('is open without METRICS_TOKEN and exposes every metric family', async () => {
    const text = await scrape(ctx);
    for (const name of [
      'payment_callbacks_total',
      'notification_deliveries_total',
      'notification_backlog',
      'notification_oldest_due_age_seconds',
      'notification_stats_up',
      'http_request_duration_seconds',
      'process_cpu_user_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_eventloop_lag_seconds',
    ]) {
      expect(text, name).toContain(`# TYPE ${name} `);
    }
    expect(text).toContain('# TYPE payment_callbacks_total counter');
    expect(text).toContain('# TYPE http_request_duration_seconds histogram');
    expect(text).toContain('# TYPE notification_backlog gauge');
  });

  it('observes requests under their route pattern, never the raw URL', async () => {
    const orderNo = uid('MET');
    expect((await ctx.api('post', '/api/orders').send({ order_no: orderNo, amount: '3.00' })).status).toBe(201);
    expect((await ctx.api('get', `/api/orders/${orderNo}`)).status).toBe(200);
    expect((await ctx.api('get', `/api/orders/${orderNo}`)).status).toBe(200);
    expect((await ctx.api('get', `/api/orders/${orderNo}-missing`)).status).toBe(404);
    expect((await ctx.api('post', `/api/orders/${orderNo}/close`)).status).toBe(200);
    expect((await ctx.api('get', `/query_order.php?action=status&order_no=${orderNo}`)).status).toBe(200);
    expect((await request(ctx.app).get(`/no/such/${orderNo}`)).status).toBe(404);
    expect((await request(ctx.app).get('/assets/css/app.css')).status).toBe(200);

    const text = await scrape(ctx);
    const count = (method: string, route: string, status: number) =>
      sample(text, 'http_request_duration_seconds_count', { method, route, status_code: String(status) });
    expect(count('POST', '/api/orders', 201)).toBeGreaterThanOrEqual(1);
    expect(count('GET', '/api/orders/:order_no', 200)).toBeGreaterThanOrEqual(2);
    // A handler's 404 keeps its route (the router has restored req.baseUrl by the time the response ends).
    expect(count('GET', '/api/orders/:order_no', 404)).toBeGreaterThanOrEqual(1);
    expect(count('POST', '/api/orders/:order_no/close', 200)).toBeGreaterThanOrEqual(1);
    expect(count('GET', '/query_order', 200)).toBeGreaterThanOrEqual(1); // the .php alias counts under the first path
    expect(count('GET', 'unmatched', 404)).toBeGreaterThanOrEqual(1);
    expect(count('GET', '/assets/*', 200)).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'http_request_duration_seconds_bucket', { le: '+Inf', method: 'GET', route: '/api/orders/:order_no', status_code: '200' })).toBe(
      count('GET', '/api/orders/:order_no', 200),
    );
    expect(text).not.toContain(orderNo);
  });

  it('reads the backlog and the oldest due event from the database at scrape time', async () => {
    const before = await scrape(ctx);
    expect(sample(before, 'notification_stats_up')).toBe(1);
    const backlog = sample(before, 'notification_backlog')!;

    const orderNo = uid('MEB');
    expect((await ctx.api('post', '/api/orders').send({ order_no: orderNo, amount: '5.00' })).status).toBe(201);
    const past = toDbTime(new Date(Date.now() - 90_000));
    await ctx.db.kysely
      .insertInto('notifications')
      .values({
        event_id: `evt_${orderNo}`,
        order_no: orderNo,
        type: 'order.paid',
        seq: 1,
        payload: '{}',
        url: 'http://127.0.0.1:9/notify',
        status: 'pending',
        next_attempt_at: past,
        created_at: past,
        updated_at: past,
      })
      .execute();

    const text = await scrape(ctx);
    expect(sample(text, 'notification_backlog')).toBe(backlog + 1);
    expect(sample(text, 'notification_oldest_due_age_seconds')).toBeGreaterThanOrEqual(89);
    expect(sample(text, 'notification_oldest_due_age_seconds')).toBeLessThan(600);
  });

  it('counts delivery outcomes of the loop passed to the app, every outcome present', async () => {
    expect(sample(await scrape(ctx), 'notification_deliveries_total', { outcome: 'delivered' })).toBe(0);
    loop.record('delivered');
    loop.record('delivered');
    loop.record('retry');
    loop.record('dead');
    const text = await scrape(ctx);
    expect(sample(text, 'notification_deliveries_total', { outcome: 'delivered' })).toBe(2);
    expect(sample(text, 'notification_deliveries_total', { outcome: 'retry' })).toBe(1);
    expect(sample(text, 'notification_deliveries_total', { outcome: 'dead' })).toBe(1);
    expect(sample(text, 'notification_deliveries_total', { outcome: 'abandoned' })).toBe(0);
  });

  it('recordCallback increments payment_callbacks_total by gateway and verdict', async () => {
    const metrics = metricsOf(ctx.app)!;
    expect(metrics).toBeDefined();
    const before = sample(await scrape(ctx), 'payment_callbacks_total', { gateway: 'generic', verdict: 'applied' }) ?? 0;
    metrics.recordCallback('generic', 'applied');
    metrics.recordCallback('generic', 'applied');
    metrics.recordCallback('alipay', 'bad_signature');
    const text = await scrape(ctx);
    expect(sample(text, 'payment_callbacks_total', { gateway: 'generic', verdict: 'applied' })).toBe(before + 2);
    expect(sample(text, 'payment_callbacks_total', { gateway: 'alipay', verdict: 'bad_signature' })).toBe(1);
  });
});

describe('GET /metrics with METRICS_TOKEN set', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext('sqlite', { env: { METRICS_TOKEN: TOKEN } });
  });
  afterAll(() => ctx?.close());

  const expectUnauthorized = (res: request.Response) => {
    expect(res.status).toBe(401);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(res.body).toMatchObject({ success: false, code: 'unauthorized', message: expect.any(String) });
    expect(res.text).not.toContain('payment_callbacks_total');
  };

  it('401 without a bearer token, with a wrong one, or with the API key header', async () => {
    expectUnauthorized(await request(ctx.app).get('/metrics'));
    expectUnauthorized(await request(ctx.app).get('/metrics').set('Accept', 'text/html'));
    expectUnauthorized(await request(ctx.app).get('/metrics').set('Authorization', `Bearer ${TOKEN}x`));
    expectUnauthorized(await request(ctx.app).get('/metrics').set('Authorization', 'Bearer short'));
    expectUnauthorized(await request(ctx.app).get('/metrics').set('Authorization', `Basic ${TOKEN}`));
    expectUnauthorized(await ctx.api('get', '/metrics'));
  });

  it('200 with the right bearer token', async () => {
    const text = await scrape(ctx, TOKEN);
    expect(text).toContain('# TYPE payment_callbacks_total counter');
    expect(await scrape(ctx, TOKEN)).toContain('http_request_duration_seconds_count{method="GET",route="/metrics",status_code="401"}');
  });
});

describe('metrics registry', () => {
  it('reports the backlog unknown (NaN, stats_up 0) instead of failing the scrape when the database does not answer', async () => {
    const errors: unknown[] = [];
    const metrics = createMetrics({ deliveryStats: () => Promise.reject(new Error('database down')), onStatsError: (err) => errors.push(err) });
    const text = await metrics.render();
    expect(sample(text, 'notification_backlog')).toBeNaN();
    expect(sample(text, 'notification_oldest_due_age_seconds')).toBeNaN();
    expect(sample(text, 'notification_stats_up')).toBe(0);
    expect(errors).toHaveLength(1); // one failed read per scrape, shared by the three gauges
  });

  it('runs the backlog queries once per scrape and keeps apps apart', async () => {
    let calls = 0;
    const a = createMetrics({ deliveryStats: async () => ({ backlog: ++calls, oldest_due_age_seconds: 4 }) });
    const b = createMetrics();
    a.recordCallback('stripe', 'duplicate');
    const text = await a.render();
    expect(calls).toBe(1);
    expect(sample(text, 'notification_backlog')).toBe(1);
    expect(sample(text, 'notification_oldest_due_age_seconds')).toBe(4);
    expect(sample(text, 'payment_callbacks_total', { gateway: 'stripe', verdict: 'duplicate' })).toBe(1);
    const other = await b.render();
    expect(sample(other, 'payment_callbacks_total', { gateway: 'stripe', verdict: 'duplicate' })).toBeUndefined();
    expect(other).not.toContain('notification_backlog '); // no database, no backlog gauge
    expect(sample(other, 'notification_deliveries_total', { outcome: 'delivered' })).toBe(0);
    expect(other).toContain('# TYPE process_cpu_user_seconds_total counter');
  });
});
