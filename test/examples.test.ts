import { spawn, spawnSync } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { PROJECT_ROOT } from '../src/shared/paths.ts';
import request from 'supertest';
import { TEST_API_KEY, TEST_GATEWAY_SECRET } from './helpers/context.ts';
import { createDeliveryContext, type DeliveryContext } from './helpers/delivery-context.ts';
import { signed } from './helpers/gateway-signer.ts';
import { freePort, waitUntil } from './helpers/service-process.ts';

/**
 * DESIGN A13: the merchant examples (PHP, Python, Node) run against the real service. Each receiver gets
 * the service's real notifications (both sign types) and forged ones; each client creates and queries an order.
 */

const CI = process.env.CI === 'true';
const SIGN_TYPES = ['MD5', 'HMAC-SHA256'] as const;
type SignType = (typeof SIGN_TYPES)[number];
// A random secret: its base64 may hold + / =, and the whole whsec_ string is the A7 key.
const SECRET = `whsec_${randomBytes(30).toString('base64')}`;

const runs = (command: string, arg: string) => spawnSync(command, [arg], { stdio: 'ignore' }).status === 0;
const LANGUAGES = [
  {
    name: 'PHP',
    command: 'php',
    available: runs('php', '-v'),
    install: 'apt-get install php-cli',
    receiver: (port: number) => ['-S', `127.0.0.1:${port}`, 'examples/php/receiver.php'],
    client: ['examples/php/client.php'],
  },
  {
    name: 'Python',
    command: 'python3',
    available: runs('python3', '--version'),
    install: 'apt-get install python3',
    receiver: () => ['examples/python/receiver.py'],
    client: ['examples/python/client.py'],
  },
  {
    name: 'Node',
    command: process.execPath,
    available: true,
    install: '',
    receiver: () => ['examples/node/receiver.mjs'],
    client: ['examples/node/client.mjs'],
  },
];
type Language = (typeof LANGUAGES)[number];

for (const lang of LANGUAGES.filter((l) => !l.available && !CI)) {
  console.warn(`\n${'!'.repeat(78)}\n!! ${lang.command} not found: the ${lang.name} example tests were NOT run (${lang.install}).\n${'!'.repeat(78)}\n`);
}

/** Runs a command to its end without blocking the event loop (the service under test lives in this process). */
function run(command: string, args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: PROJECT_ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A receiver example as a child process on a free port, with its own seen-events file. */
async function startExampleReceiver(lang: Language, env: Record<string, string> = {}) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'examples-receiver-'));
  const child = spawn(lang.command, lang.receiver(port), {
    cwd: PROJECT_ROOT,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/tmp',
      PORT: String(port),
      NOTIFY_SECRET: SECRET,
      SEEN_EVENTS_FILE: join(dir, 'seen-events.txt'),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const base = `http://127.0.0.1:${port}`;
  const stop = () => {
    child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitUntil(
      `the ${lang.name} receiver to answer on ${base}`,
      async () => {
        if (child.exitCode !== null) throw new Error(`the ${lang.name} receiver exited (${child.exitCode}): ${out}`);
        return fetch(base, { method: 'GET' }).then(
          (r) => r.status === 405,
          () => false,
        );
      },
      10_000,
      50,
      () => out,
    );
  } catch (err) {
    stop();
    throw err;
  }
  return {
    url: `${base}/notify`,
    output: () => out,
    /** The receiver's "processed" log lines for one order. */
    processed: (orderNo: string) => out.split('\n').filter((l) => l.startsWith('processed ') && l.includes(` order_no=${orderNo} `)),
    stop,
  };
}
type ExampleReceiver = Awaited<ReturnType<typeof startExampleReceiver>>;

/** An independent A7 sign: fields but sign, not null or empty, byte order, k=v&…&key=<whole secret>. */
function a7Sign(body: Record<string, unknown>, signType: SignType, secret = SECRET): string {
  const text =
    Object.keys(body)
      .filter((k) => k !== 'sign' && body[k] !== null && body[k] !== '')
      .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
      .map((k) => `${k}=${String(body[k])}`)
      .join('&') + `&key=${secret}`;
  return (signType === 'MD5' ? createHash('md5') : createHmac('sha256', secret)).update(text).digest('hex').toUpperCase();
}

/** Standard Webhooks headers for `raw`, signed with `secret` (whsec_…). */
function webhookHeaders(id: string, timestamp: number, raw: string, secret = SECRET): Record<string, string> {
  const signature = createHmac('sha256', Buffer.from(secret.slice('whsec_'.length), 'base64'))
    .update(`${id}.${timestamp}.${raw}`)
    .digest('base64');
  return { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': `v1,${signature}` };
}

const nowSeconds = () => Math.floor(Date.now() / 1000);
let forged = 0;

/** A notification shaped and signed as the service sends it (A7), for an order only these tests use. */
function notification(signType: SignType, fields: Record<string, unknown> = {}, timestamp = nowSeconds()) {
  const body: Record<string, unknown> = {
    event_id: `evt_${randomBytes(16).toString('hex')}`,
    type: 'order.paid',
    order_no: `FORGED-${++forged}-${randomBytes(3).toString('hex')}`,
    transaction_id: 'TXN-1',
    amount: '9.99',
    currency: 'CNY',
    status: 'paid',
    paid_at: new Date().toISOString(),
    seq: 1,
    timestamp,
    nonce: randomBytes(12).toString('hex'),
    sign_type: signType,
    ...fields,
  };
  body.sign = a7Sign(body, signType);
  const raw = JSON.stringify(body);
  return { body, raw, orderNo: String(body.order_no), headers: webhookHeaders(String(body.event_id), timestamp, raw) };
}

/** An order closed (transaction_id and paid_at null) and then paid late: events seq 1 and 2, both delivered. */
async function closedThenPaid(ctx: DeliveryContext, url: string): Promise<string> {
  const orderNo = `LATE-${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
  expect((await ctx.api('post', '/api/orders').send({ order_no: orderNo, amount: '5.00', notify_url: url })).status).toBe(201);
  expect((await ctx.api('post', `/api/orders/${orderNo}/close`)).status).toBe(200);
  await ctx.waitForStatus(orderNo, 'delivered');
  const paid = await request(ctx.app)
    .post('/notify')
    .type('form')
    .send(signed({ order_no: orderNo, transaction_id: `T-${orderNo}`, amount: '5.00', status: 'success' }, TEST_GATEWAY_SECRET));
  expect(paid.status).toBe(200);
  await ctx.waitForStatus(orderNo, 'delivered');
  return orderNo;
}

async function post(url: string, raw: string, headers: Record<string, string>) {
  const res = await fetch(url, { method: 'POST', headers, body: raw });
  return { status: res.status, text: await res.text() };
}

describe('merchant examples against the service', () => {
  const contexts = {} as Record<SignType, DeliveryContext>;
  let server: Server;
  let baseUrl: string;

  beforeAll(async () => {
    for (const signType of SIGN_TYPES) {
      contexts[signType] = await createDeliveryContext('sqlite', {
        NOTIFY_SECRET: SECRET,
        NOTIFY_SIGN_TYPE: signType,
        NOTIFY_EXPECT_BODY: 'success',
        NOTIFY_ALLOW_PRIVATE_NETWORKS: 'true',
      });
    }
    server = contexts.MD5.app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise((resolve) => server?.close(resolve));
    for (const ctx of Object.values(contexts)) await ctx.close();
  });

  describe.each(LANGUAGES.filter((l) => l.available || CI))('$name', (lang) => {
    let receiver: ExampleReceiver;

    beforeAll(async () => {
      if (!lang.available) throw new Error(`CI=true but ${lang.command} is missing: the ${lang.name} examples must run in CI (.ci/run installs it).`);
      receiver = await startExampleReceiver(lang);
    });
    afterAll(() => receiver?.stop());

    it.each(SIGN_TYPES)('the receiver verifies the service’s real %s notifications and processes each event once', async (signType) => {
      const ctx = contexts[signType];
      // A paid order (seq 1) …
      const paid = await ctx.paidOrder(receiver.url, '9.99');
      await ctx.waitForStatus(paid, 'delivered');
      // … and one closed (transaction_id and paid_at null, so skipped by the sign), then paid late (seq 2).
      const late = await closedThenPaid(ctx, receiver.url);
      const events = [...(await ctx.events(paid)), ...(await ctx.events(late))];
      expect(events.map((e) => [e.status, e.attempts])).toEqual([
        ['delivered', 1],
        ['delivered', 1],
        ['delivered', 1],
      ]);
      // A resend repeats the paid event's event_id: answered success again, not processed twice.
      expect((await ctx.api('post', `/api/orders/${paid}/notifications/resend`)).status).toBe(202);
      await waitUntil(
        'the resent event to be delivered',
        async () => (await ctx.events(paid))[0]!.attempts === 2 && (await ctx.events(paid))[0]!.status === 'delivered',
        10_000,
        25,
        () => receiver.output(),
      );
      const attempts = [...(await ctx.attempts(paid)), ...(await ctx.attempts(late))];
      expect(attempts.map((a) => a.status_code)).toEqual([200, 200, 200, 200]);

      await vi.waitFor(() => expect(receiver.processed(late)).toHaveLength(2));
      expect(receiver.processed(paid), receiver.output()).toEqual([
        expect.stringMatching(new RegExp(`^processed order\\.paid order_no=${paid} status=paid amount=9\\.99 CNY event_id=${events[0]!.event_id}$`)),
      ]);
      expect(receiver.processed(late).map((l) => l.split(' ')[1])).toEqual(['order.closed', 'order.paid']);
      expect(receiver.output()).toContain(`duplicate event_id=${events[0]!.event_id}`);
    });

    it.each(SIGN_TYPES)(
      'a valid %s notification is answered success; a replay of its event_id is answered success but not processed again',
      async (signType) => {
        const n = notification(signType);
        expect(await post(receiver.url, n.raw, n.headers)).toEqual({ status: 200, text: 'success' });
        expect(await post(receiver.url, n.raw, n.headers)).toEqual({ status: 200, text: 'success' });
        // A later attempt of the same event: new nonce and timestamp, same event_id.
        const retry = notification(signType, { event_id: n.body.event_id, order_no: n.orderNo, nonce: randomBytes(12).toString('hex') }, nowSeconds() + 1);
        expect(await post(receiver.url, retry.raw, retry.headers)).toEqual({ status: 200, text: 'success' });
        await vi.waitFor(() => expect(receiver.processed(n.orderNo)).toHaveLength(1));
      },
    );

    it('refuses a changed field under the old sign (the Standard Webhooks signature re-made, so only sign can catch it)', async () => {
      for (const signType of SIGN_TYPES) {
        const n = notification(signType);
        const changes: Array<Record<string, unknown>> = [
          { amount: '999.00' },
          { status: 'failed' },
          { seq: 2 },
          { extra: 'x' },
          { sign_type: signType === 'MD5' ? 'HMAC-SHA256' : 'MD5' },
          { sign: String(n.body.sign).replace(/^./, (c) => (c === 'A' ? 'B' : 'A')) },
        ];
        for (const change of changes) {
          const raw = JSON.stringify({ ...n.body, ...change });
          const res = await post(receiver.url, raw, webhookHeaders(String(n.body.event_id), Number(n.body.timestamp), raw));
          expect([res.status, JSON.stringify(change)]).toEqual([401, JSON.stringify(change)]);
        }
        // The same fields signed with another secret.
        const other = { ...n.body, sign: a7Sign(n.body, signType, `whsec_${randomBytes(30).toString('base64')}`) };
        const raw = JSON.stringify(other);
        expect((await post(receiver.url, raw, webhookHeaders(String(n.body.event_id), Number(n.body.timestamp), raw))).status).toBe(401);
        expect(receiver.processed(n.orderNo)).toEqual([]);
      }
    });

    it('refuses a bad, foreign or missing Standard Webhooks signature, and accepts any matching one of several', async () => {
      const n = notification('MD5');
      const good = n.headers['webhook-signature']!;
      const foreign = webhookHeaders(String(n.body.event_id), Number(n.body.timestamp), n.raw, `whsec_${randomBytes(30).toString('base64')}`)[
        'webhook-signature'
      ]!;
      for (const signature of [foreign, `v1,${'A'.repeat(43)}=`, good.replace('v1,', 'v2,'), good.slice(0, -2), `${foreign} v1a,${good.slice(3)}`]) {
        const res = await post(receiver.url, n.raw, { ...n.headers, 'webhook-signature': signature });
        expect([res.status, signature]).toEqual([401, signature]);
      }
      for (const missing of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) {
        const headers = { ...n.headers };
        delete headers[missing];
        expect([(await post(receiver.url, n.raw, headers)).status, missing]).toEqual([400, missing]);
      }
      // The raw body is what is signed: the same JSON re-spaced no longer matches.
      expect((await post(receiver.url, JSON.stringify(n.body, null, 1), n.headers)).status).toBe(401);
      expect(receiver.processed(n.orderNo)).toEqual([]);
      expect(await post(receiver.url, n.raw, { ...n.headers, 'webhook-signature': `${foreign} ${good}` })).toEqual({ status: 200, text: 'success' });
      // Its stderr line may arrive just after the HTTP answer.
      await vi.waitFor(() => expect(receiver.processed(n.orderNo)).toHaveLength(1));
    });

    it('refuses a stale or future timestamp, in the header or in the body', async () => {
      const now = nowSeconds();
      for (const [bodyAt, headerAt] of [
        [now - 400, now - 400],
        [now + 400, now + 400],
        [now - 400, now],
        [now, now - 400],
      ] as const) {
        const n = notification('HMAC-SHA256', {}, bodyAt);
        const headers = webhookHeaders(String(n.body.event_id), headerAt, n.raw);
        expect([(await post(receiver.url, n.raw, headers)).status, bodyAt - now, headerAt - now]).toEqual([401, bodyAt - now, headerAt - now]);
        expect(receiver.processed(n.orderNo)).toEqual([]);
      }
      const inWindow = notification('HMAC-SHA256', {}, now - 200);
      expect((await post(receiver.url, inWindow.raw, inWindow.headers)).status).toBe(200);
    });

    it('refuses a webhook-id other than event_id, malformed bodies, non-POST requests', async () => {
      const n = notification('MD5');
      expect((await post(receiver.url, n.raw, webhookHeaders('evt_other', Number(n.body.timestamp), n.raw))).status).toBe(400);
      const nested = notification('MD5', { metadata: { a: 1 } });
      const notObject = '[1,2]';
      const notJson = '{"event_id":';
      for (const [raw, id] of [
        [nested.raw, String(nested.body.event_id)],
        [notObject, 'evt_x'],
        [notJson, 'evt_x'],
      ] as const) {
        expect([(await post(receiver.url, raw, webhookHeaders(id, nowSeconds(), raw))).status, raw.slice(0, 20)]).toEqual([400, raw.slice(0, 20)]);
      }
      const get = await fetch(receiver.url);
      expect(get.status).toBe(405);
      expect(receiver.processed(n.orderNo)).toEqual([]);
      expect(receiver.processed(nested.orderNo)).toEqual([]);
    });

    it('NOTIFY_SIGN_TYPE pins the sign type: an MD5 notification is refused when HMAC-SHA256 is configured', async () => {
      const pinned = await startExampleReceiver(lang, { NOTIFY_SIGN_TYPE: 'HMAC-SHA256' });
      try {
        const md5 = notification('MD5');
        expect((await post(pinned.url, md5.raw, md5.headers)).status).toBe(401);
        const hmac = notification('HMAC-SHA256');
        expect(await post(pinned.url, hmac.raw, hmac.headers)).toEqual({ status: 200, text: 'success' });
      } finally {
        pinned.stop();
      }
    });

    it('the client creates an order, queries it and prints the queried order as JSON; errors exit non-zero', async () => {
      const orderNo = `EX-${lang.name}-${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
      const env = { BASE_URL: baseUrl, API_KEY: TEST_API_KEY, ORDER_NO: orderNo, NOTIFY_URL: 'https://merchant.example/notify' };
      const result = await run(lang.command, lang.client, env);
      expect(result.code, result.stderr).toBe(0);
      const printed = JSON.parse(result.stdout);
      const queried = await contexts.MD5.api('get', `/api/orders/${orderNo}`);
      expect(queried.status).toBe(200);
      expect(printed).toEqual(queried.body.data);
      expect(printed).toMatchObject({
        order_no: orderNo,
        amount: '9.99',
        currency: 'CNY',
        status: 'pending',
        notify_url: 'https://merchant.example/notify',
        payments: [],
        notifications: [],
      });
      // Run again: the same order is found (200) and printed again; errors exit non-zero with a message.
      const [again, badKey, conflict, down] = await Promise.all([
        run(lang.command, lang.client, env),
        run(lang.command, lang.client, { ...env, API_KEY: 'wrong-key' }),
        run(lang.command, lang.client, { ...env, AMOUNT: '1.00' }),
        freePort().then((port) => run(lang.command, lang.client, { ...env, BASE_URL: `http://127.0.0.1:${port}` })),
      ]);
      expect(again.code, again.stderr).toBe(0);
      expect(JSON.parse(again.stdout)).toEqual(queried.body.data);
      for (const [failed, message] of [
        [badKey, /401 unauthorized/],
        [conflict, /409 order_exists/],
        [down, /^error: POST http:\/\/127\.0\.0\.1:\d+\/api\/orders: .+/],
      ] as const) {
        expect(failed.code, failed.stderr).toBe(1);
        expect(failed.stdout).toBe('');
        expect(failed.stderr).toMatch(message);
      }
    });
  });
});
