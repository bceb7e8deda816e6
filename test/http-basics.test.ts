import { Writable } from 'node:stream';
import { pino } from 'pino';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/app.ts';
import { REDACT_PATHS } from '../src/shared/logger.ts';
import { createTestContext, TEST_API_KEY, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function expectError(res: request.Response, status: number, code: string): void {
  expect(res.status).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect(res.body).toMatchObject({ success: false, code, message: expect.any(String) });
}

describe.each(ENGINES)('HTTP basics on %s', (engine) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(engine);
  });
  afterAll(() => ctx?.close());

  it('400 validation_failed for malformed JSON', async () => {
    const res = await ctx.api('post', '/api/orders').set('Content-Type', 'application/json').send('{"amount": "1.00",');
    expectError(res, 400, 'validation_failed');
    expect(res.body.message).toMatch(/JSON/);
  });

  it('413 payload_too_large for a 65 KiB JSON body and a 65 KiB form body', async () => {
    const json = JSON.stringify({ amount: '1.00', subject: 'x'.repeat(65 * 1024) });
    expectError(await ctx.api('post', '/api/orders').set('Content-Type', 'application/json').send(json), 413, 'payload_too_large');
    const form = `amount=1.00&subject=${'x'.repeat(65 * 1024)}`;
    expectError(await ctx.api('post', '/api/orders').set('Content-Type', 'application/x-www-form-urlencoded').send(form), 413, 'payload_too_large');
    // Just under the limit is parsed normally (and then validated by the route).
    const small = JSON.stringify({ amount: '1.00', subject: 'x'.repeat(60 * 1024) });
    expectError(await ctx.api('post', '/api/orders').set('Content-Type', 'application/json').send(small), 400, 'validation_failed');
  });

  it('404 not_found JSON for unknown /api routes, whatever the Accept header', async () => {
    expectError(await ctx.api('get', '/api/nope'), 404, 'not_found');
    expectError(await ctx.api('get', '/api/nope').set('Accept', 'text/html'), 404, 'not_found');
    expectError(await request(ctx.app).get('/healthz/nope').set('Accept', 'text/html'), 404, 'not_found');
  });

  it('404 HTML page for a browser path, JSON for a program', async () => {
    const page = await request(ctx.app).get('/nope').set('Accept', 'text/html,application/xhtml+xml,*/*;q=0.8');
    expect(page.status).toBe(404);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.text).toMatch(/<html/i);
    expect(page.text).toContain('not_found');
    expectError(await request(ctx.app).get('/nope').set('Accept', 'application/json'), 404, 'not_found');
  });

  it('/healthz and /readyz answer 200 on a migrated database', async () => {
    const health = await request(ctx.app).get('/healthz');
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ success: true, data: { status: 'ok' } });
    const ready = await request(ctx.app).get('/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({ success: true, data: { status: 'ready', database: engine, migrations: 'current' } });
  });

  it('echoes a sane X-Request-Id and generates a UUID otherwise', async () => {
    const sent = 'req-1234.abc:XYZ_9';
    expect((await request(ctx.app).get('/healthz').set('X-Request-Id', sent)).headers['x-request-id']).toBe(sent);
    const a = (await request(ctx.app).get('/healthz')).headers['x-request-id'];
    const b = (await ctx.api('get', '/api/nope')).headers['x-request-id'];
    expect(a).toMatch(UUID);
    expect(b).toMatch(UUID);
    expect(a).not.toBe(b);
    for (const bad of ['has spaces in it', 'x'.repeat(300), 'semi;colon', '<script>']) {
      const id = (await request(ctx.app).get('/healthz').set('X-Request-Id', bad)).headers['x-request-id'];
      expect(id).toMatch(UUID);
    }
  });

  it('sends strict security headers and no HSTS over plain HTTP', async () => {
    for (const res of [await request(ctx.app).get('/healthz'), await request(ctx.app).get('/nope').set('Accept', 'text/html')]) {
      const csp = res.headers['content-security-policy'] as string;
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain("default-src 'self'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).not.toContain('unsafe-inline');
      expect(csp).not.toContain('unsafe-eval');
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['x-powered-by']).toBeUndefined();
      expect(res.headers['strict-transport-security']).toBeUndefined();
    }
  });
});

describe.each(ENGINES)('/readyz when the %s database is gone', (engine) => {
  it('answers 503 unavailable once the database handle is closed', async () => {
    const ctx = await createTestContext(engine);
    try {
      expect((await request(ctx.app).get('/readyz')).status).toBe(200);
      await ctx.db.close();
      const res = await request(ctx.app).get('/readyz');
      expectError(res, 503, 'unavailable');
      // The process itself is still alive.
      expect((await request(ctx.app).get('/healthz')).status).toBe(200);
      // And an API call that needs storage fails with the envelope rather than a hang or a crash.
      const api = await ctx.api('get', '/api/orders');
      expectError(api, 503, 'unavailable');
      expect(api.headers['retry-after']).toBe('5');
    } finally {
      await ctx.database.drop();
    }
  });
});

describe('log redaction', () => {
  it('logs the request id but no API key, bearer token or signature', async () => {
    let text = '';
    const stream = new Writable({
      write(chunk, _encoding, done) {
        text += String(chunk);
        done();
      },
    });
    const logger = pino({ level: 'info', redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, stream);
    const ctx = await createTestContext('sqlite');
    try {
      const app = createApp({ config: ctx.config, db: ctx.db, logger });
      const requestId = 'log-test-request-0001';
      const res = await request(app)
        .get('/api/orders?sign=SECRETSIGN&key=abc&page=1')
        .set('X-Request-Id', requestId)
        .set('X-API-Key', TEST_API_KEY)
        .set('Authorization', 'Bearer BEARERSECRET123')
        .set('Cookie', 'session=COOKIESECRET');
      expect(res.headers['x-request-id']).toBe(requestId);
      // A failing request is logged too, with the same care.
      await request(app).get('/query_order?action=status&order_no=X&sign=SECRETSIGN2').set('X-API-Key', 'WRONGKEYSECRET');
      await new Promise((resolve) => setImmediate(resolve));

      expect(text).toContain(requestId);
      const lines = text
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { req?: { id?: string; url?: string } });
      const line = lines.find((l) => l.req?.id === requestId);
      expect(line?.req?.url).toBe('/api/orders?sign=[redacted]&key=[redacted]&page=1');
      expect(lines.some((l) => l.req?.url === '/query_order?action=status&order_no=X&sign=[redacted]')).toBe(true);
      for (const secret of [TEST_API_KEY, 'BEARERSECRET123', 'SECRETSIGN', 'SECRETSIGN2', 'COOKIESECRET', 'WRONGKEYSECRET', 'key=abc', '=abc']) {
        expect(text).not.toContain(secret);
      }
    } finally {
      await ctx.close();
    }
  });
});
