import { connect } from 'node:net';
import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeServer, createServer, listen } from '../src/server.ts';
import { createTestContext, TEST_API_KEY, type TestContext } from './helpers/context.ts';

/**
 * Hostile input, part 3 (issue 7 item 3): slow clients cannot hold the process, and /api floods get 429.
 *
 * src/server.ts sets keepAliveTimeout 65 s, headersTimeout 20 s and requestTimeout 30 s, and Node checks the
 * header/request deadlines only every `connectionsCheckingInterval` (30 s by default), so with the production
 * values a slowloris socket lives 30–60 s — too long for a test. The tests below therefore take the server exactly
 * as createServer() builds it, check the production values, and then lower the same three properties (plus the
 * checking interval) to a few seconds before listening: that proves the mechanism the production values rely on.
 */
const TEST_TIMEOUTS = { headersTimeout: 1500, requestTimeout: 3000, keepAliveTimeout: 1000, connectionsCheckingInterval: 200 };
const SLACK_MS = 1500;

interface SlowClient {
  /** Resolves when the server closes the socket: how long it lived and what the server sent. */
  closed: Promise<{ afterMs: number; received: string }>;
}

/** A raw TCP client that writes `prefix` at once, then `drip` one byte at a time every `everyMs` (nothing more if empty). */
function slowClient(port: number, prefix: string, drip: string, everyMs: number): SlowClient {
  const socket = connect(port, '127.0.0.1');
  const started = Date.now();
  let received = '';
  let timer: NodeJS.Timeout | undefined;
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  socket.on('error', () => undefined); // a reset by the server is a close too
  socket.once('connect', () => {
    socket.write(prefix);
    let i = 0;
    if (drip.length > 0) {
      timer = setInterval(() => {
        if (!socket.destroyed && socket.writable) socket.write(drip[i++ % drip.length]!);
      }, everyMs);
    }
  });
  const closed = new Promise<{ afterMs: number; received: string }>((resolve) => {
    socket.once('close', () => {
      clearInterval(timer);
      resolve({ afterMs: Date.now() - started, received });
    });
  });
  return { closed };
}

describe('slow clients against the real server (src/server.ts createServer/listen)', () => {
  let ctx: TestContext;
  let server: Server;
  let port: number;
  let production: { headersTimeout: number; requestTimeout: number; keepAliveTimeout: number; connectionsCheckingInterval: number };

  beforeAll(async () => {
    ctx = await createTestContext('sqlite');
    server = createServer(ctx.app, ctx.config);
    production = {
      headersTimeout: server.headersTimeout,
      requestTimeout: server.requestTimeout,
      keepAliveTimeout: server.keepAliveTimeout,
      connectionsCheckingInterval: (server as Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval,
    };
    Object.assign(server, TEST_TIMEOUTS); // read by Node when it starts listening
    ({ port } = await listen(server, 0, '127.0.0.1'));
  });
  afterAll(async () => {
    if (server) await closeServer(server, 1000);
    await ctx?.close();
  });

  it('createServer sets finite header, request and keep-alive timeouts', () => {
    for (const name of ['headersTimeout', 'requestTimeout', 'keepAliveTimeout'] as const) {
      expect(production[name], name).toBeGreaterThan(0);
      expect(production[name], name).toBeLessThanOrEqual(120_000);
    }
    // Node enforces the header deadline as min(headersTimeout, requestTimeout), checked every connectionsCheckingInterval:
    // the longest a client that never finishes its headers can hold a socket.
    const worstCase = Math.min(production.headersTimeout, production.requestTimeout) + production.connectionsCheckingInterval;
    expect(worstCase).toBeLessThanOrEqual(60_000);
  });

  it('closes a slowloris connection (headers one byte per second) once headersTimeout has passed, with 408', async () => {
    const client = slowClient(port, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n', 'X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 1000);
    const { afterMs, received } = await client.closed;
    expect(afterMs).toBeGreaterThanOrEqual(TEST_TIMEOUTS.headersTimeout - 100);
    expect(afterMs).toBeLessThanOrEqual(TEST_TIMEOUTS.headersTimeout + TEST_TIMEOUTS.connectionsCheckingInterval + SLACK_MS);
    expect(received).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('cuts off a callback whose body arrives slower than requestTimeout, and records nothing', async () => {
    const logsBefore = await ctx.db.kysely.selectFrom('payment_logs').select('id').execute();
    const headers = 'POST /notify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n';
    const client = slowClient(port, headers, 'order_no=SLOW&amount=1&', 250);
    const { afterMs } = await client.closed;
    expect(afterMs).toBeGreaterThanOrEqual(TEST_TIMEOUTS.requestTimeout - 100);
    expect(afterMs).toBeLessThanOrEqual(TEST_TIMEOUTS.requestTimeout + TEST_TIMEOUTS.connectionsCheckingInterval + SLACK_MS);
    // The body never completed, so the callback never reached verification or storage.
    const logsAfter = await ctx.db.kysely.selectFrom('payment_logs').select('id').execute();
    expect(logsAfter).toHaveLength(logsBefore.length);
  });

  it('closes an idle keep-alive connection after keepAliveTimeout', async () => {
    const client = slowClient(port, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n', '', 0);
    const { afterMs, received } = await client.closed;
    expect(received).toMatch(/^HTTP\/1\.1 200 /);
    expect(received).toMatch(/Keep-Alive: timeout=1/i);
    expect(afterMs).toBeGreaterThanOrEqual(TEST_TIMEOUTS.keepAliveTimeout - 100);
    // Recent Node versions keep the socket up to 1 s past keepAliveTimeout (a buffer against reuse races).
    expect(afterMs).toBeLessThanOrEqual(TEST_TIMEOUTS.keepAliveTimeout + 1000 + SLACK_MS);
  });

  it('keeps serving while 100 slowloris clients are connected, and closes all of them', async () => {
    const clients = Array.from({ length: 100 }, (_, i) => slowClient(port, `POST /notify HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Client: ${i}\r\n`, 'X-Slow: a', 500));
    await new Promise((r) => setTimeout(r, 300));
    const started = Date.now();
    const res = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(res.status).toBe(200);
    expect(Date.now() - started).toBeLessThan(1000);
    const results = await Promise.all(clients.map((c) => c.closed));
    for (const { afterMs } of results)
      expect(afterMs).toBeLessThanOrEqual(TEST_TIMEOUTS.headersTimeout + TEST_TIMEOUTS.connectionsCheckingInterval + SLACK_MS + 500);
  });
});

describe('rate limits under a burst (quick check; test/rate-limit.test.ts has the details)', () => {
  it('answers 429 rate_limited with Retry-After once RATE_LIMIT_PER_MINUTE is used up', async () => {
    const ctx = await createTestContext('sqlite', { env: { RATE_LIMIT_PER_MINUTE: '5' } });
    const server = createServer(ctx.app, ctx.config);
    try {
      const { port } = await listen(server, 0, '127.0.0.1');
      const burst = await Promise.all(
        Array.from({ length: 30 }, () =>
          fetch(`http://127.0.0.1:${port}/api/orders`, { headers: { 'X-API-Key': TEST_API_KEY } }).then(async (r) => ({
            status: r.status,
            retryAfter: r.headers.get('retry-after'),
            body: (await r.json()) as unknown,
          })),
        ),
      );
      expect(burst.filter((r) => r.status === 200)).toHaveLength(5);
      const limited = burst.filter((r) => r.status === 429);
      expect(limited).toHaveLength(25);
      for (const r of limited) {
        expect(r.body).toMatchObject({ success: false, code: 'rate_limited' });
        expect(r.retryAfter).toMatch(/^\d+$/);
        expect(Number(r.retryAfter)).toBeGreaterThan(0);
        expect(Number(r.retryAfter)).toBeLessThanOrEqual(60);
      }
    } finally {
      await closeServer(server, 1000);
      await ctx.close();
    }
  });
});
