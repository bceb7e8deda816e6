import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { computeSign } from '../src/shared/signing.ts';
import { attemptDelivery, createDeliveryAgent, type DeliverySettings } from '../src/notifications/delivery.ts';
import { signedDelivery } from '../src/notifications/signed-body.ts';
import { startReceiver } from './helpers/receiver.ts';

const SECRET = `whsec_${Buffer.from('0123456789abcdef0123456789abcdef').toString('base64')}`;
const settings: DeliverySettings = { secret: SECRET, signType: 'MD5', timeoutMs: 400, expectBody: null, allowPrivateNetworks: true };
const now = new Date('2026-01-02T03:04:05.678Z');
const event = {
  event_id: 'evt_1',
  type: 'order.paid',
  order_no: 'Ö-"1"\\',
  transaction_id: null,
  amount: '12.34',
  currency: 'CNY',
  status: 'paid',
  paid_at: '',
  seq: 3,
};

/** What the body was before it was appended to the stored text: every field written again by JSON.stringify. */
function reference(body: string, signType: DeliverySettings['signType']) {
  const parsed = JSON.parse(body) as Record<string, string | number | null>;
  const { sign, ...unsigned } = parsed;
  return { text: JSON.stringify({ ...unsigned, sign: computeSign(unsigned, SECRET, signType) }), sign };
}

describe('the A7 body of one attempt', () => {
  it.each(['MD5', 'HMAC-SHA256'] as const)('appended to the stored event is the text JSON.stringify writes, signed as A5 says (%s)', (signType) => {
    const { body, headers } = signedDelivery(JSON.stringify(event), { secret: SECRET, signType }, now);
    expect(body).toBe(reference(body, signType).text);
    expect(Object.keys(JSON.parse(body))).toEqual([...Object.keys(event), 'timestamp', 'nonce', 'sign_type', 'sign']);
    expect(JSON.parse(body)).toMatchObject({ ...event, timestamp: 1767323045, sign_type: signType });
    expect(headers).toMatchObject({ 'webhook-id': 'evt_1', 'webhook-timestamp': '1767323045', 'content-type': 'application/json' });
  });

  it.each([
    ['an empty object', '{}'],
    ['a stored field named like an added one', JSON.stringify({ ...event, nonce: 'old' })],
    ['text around the object', `${JSON.stringify(event)}\n`],
  ])('takes the general path for %s, with the same result', (_name, stored) => {
    const { body } = signedDelivery(stored, settings, now);
    expect(body).toBe(reference(body, 'MD5').text);
    expect(JSON.parse(body)).toMatchObject({ ...JSON.parse(stored), timestamp: 1767323045, nonce: expect.not.stringMatching(/^old$/) });
  });

  it('uses a fresh nonce per attempt', () => {
    const a = JSON.parse(signedDelivery(JSON.stringify(event), settings, now).body);
    const b = JSON.parse(signedDelivery(JSON.stringify(event), settings, now).body);
    expect(a.nonce).not.toBe(b.nonce);
    expect(a.sign).not.toBe(b.sign);
  });
});

describe('one delivery attempt over HTTP', () => {
  const agent = createDeliveryAgent(settings);
  let raw: Server;
  let rawUrl: string;
  beforeAll(async () => {
    // Answers the raw cases a helper receiver cannot: informational answers, endless bodies.
    raw = createServer((req, res) => {
      req.resume();
      if (req.url === '/early') {
        res.writeEarlyHints({ link: '</x>; rel=preload' });
        res.end('after hints');
      } else if (req.url === '/endless') {
        res.write('partial');
      } else {
        res.writeHead(429, { 'retry-after': '7' }).end('slow down');
      }
    });
    await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
    rawUrl = `http://127.0.0.1:${(raw.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    raw.closeAllConnections();
    await new Promise((resolve) => raw.close(resolve));
    await agent.close();
  });

  const attempt = (url: string) => attemptDelivery(url, JSON.stringify(event), settings, agent, now);

  it('keeps the first 1024 bytes of a long answer, drops the rest, and the agent keeps working', async () => {
    const receiver = await startReceiver((n, res) => res.end(n === 0 ? 'é'.repeat(3000) : 'ok'));
    try {
      const long = await attempt(receiver.url);
      expect(long).toMatchObject({ verdict: { kind: 'delivered' }, statusCode: 200, error: null });
      expect(Buffer.byteLength(long.excerpt!.replace(/\uFFFD$/, 'é'))).toBe(1024);
      expect(await attempt(`${receiver.url}?again=1`)).toMatchObject({ verdict: { kind: 'delivered' }, excerpt: 'ok' });
      expect(receiver.received.map((r) => JSON.parse(r.body).event_id)).toEqual(['evt_1', 'evt_1']);
    } finally {
      await receiver.close();
    }
  });

  it('reads past informational answers to the final one', async () => {
    expect(await attempt(`${rawUrl}/early`)).toMatchObject({ verdict: { kind: 'delivered' }, statusCode: 200, excerpt: 'after hints' });
  });

  it('records Retry-After, a body that never ends as a timeout, and a refused connection', async () => {
    expect(await attempt(`${rawUrl}/busy`)).toMatchObject({
      verdict: { kind: 'failed', reason: 'HTTP 429', retryAfterMs: 7000 },
      statusCode: 429,
      excerpt: 'slow down',
    });
    const endless = await attempt(`${rawUrl}/endless`);
    expect(endless).toMatchObject({ verdict: { kind: 'failed', reason: 'timeout after 400 ms' }, statusCode: null, excerpt: null });
    expect(endless.durationMs).toBeGreaterThanOrEqual(350);
    const closed = await startReceiver();
    const url = closed.url;
    await closed.close();
    expect(await attempt(url)).toMatchObject({ verdict: { kind: 'failed', reason: expect.stringMatching(/^ECONNREFUSED/) }, statusCode: null });
  });
});
