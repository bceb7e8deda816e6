import { describe, expect, it, vi } from 'vitest';
import { signedDelivery } from '../src/notifications/signed-body.ts';
import { TEST_ENV } from './helpers/context.ts';

// The per-attempt nonce is the only random input of a notification: fixed here (0xab bytes), so whole bodies are known answers.
vi.mock('node:crypto', async (importOriginal) => {
  const crypto = await importOriginal<typeof import('node:crypto')>();
  const randomBytes = (size: number) => Buffer.alloc(size, 0xab);
  return { ...crypto, default: { ...crypto, randomBytes }, randomBytes };
});

/*
 * Known answers for outbound merchant notifications (A7 body, A5 sign, Standard Webhooks header), computed once
 * outside this project and written here verbatim:
 *   sign:   php (ksort, skip null/empty, k=v&…&key=<NOTIFY_SECRET>, md5 / hash_hmac sha256, upper case), checked with
 *           openssl dgst -md5 / openssl dgst -sha256 -hmac <NOTIFY_SECRET>
 *   header: base64(hash_hmac('sha256', "<id>.<timestamp>.<body>", base64_decode(<secret without whsec_>), true)), checked with
 *           openssl dgst -sha256 -mac HMAC -macopt hexkey:0707…07 -binary | base64
 * NOTIFY_SECRET is whsec_ + base64 of 32 bytes 0x07; the time is 2024-05-01T08:00:06.789Z (timestamp 1714550406).
 */
const SECRET = 'whsec_BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=';
const NOW = new Date('2024-05-01T08:00:06.789Z');
const NONCE = 'abababababababababababab';

const VECTORS = [
  {
    name: 'order.paid, MD5',
    signType: 'MD5' as const,
    payload:
      '{"event_id":"evt_01HWKA00000000000000000001","type":"order.paid","order_no":"KA1001","transaction_id":"2024050122001446870001","amount":"12.34","currency":"CNY","status":"paid","paid_at":"2024-05-01T08:00:05.123Z","seq":1}',
    body: '{"event_id":"evt_01HWKA00000000000000000001","type":"order.paid","order_no":"KA1001","transaction_id":"2024050122001446870001","amount":"12.34","currency":"CNY","status":"paid","paid_at":"2024-05-01T08:00:05.123Z","seq":1,"timestamp":1714550406,"nonce":"abababababababababababab","sign_type":"MD5","sign":"E40AB56FABCC31AC3A6D8F0DE53C14DD"}',
    webhookSignature: 'v1,eaJ5Cumh9i0ugNcYl80SXRromlBvyBVxJzoGYHYkM0o=',
  },
  {
    name: 'order.closed, HMAC-SHA256, null transaction_id and paid_at left out of the sign',
    signType: 'HMAC-SHA256' as const,
    payload:
      '{"event_id":"evt_01HWKA00000000000000000002","type":"order.closed","order_no":"KA1005","transaction_id":null,"amount":"0.50","currency":"USD","status":"closed","paid_at":null,"seq":2}',
    body: '{"event_id":"evt_01HWKA00000000000000000002","type":"order.closed","order_no":"KA1005","transaction_id":null,"amount":"0.50","currency":"USD","status":"closed","paid_at":null,"seq":2,"timestamp":1714550406,"nonce":"abababababababababababab","sign_type":"HMAC-SHA256","sign":"B6E367901A208E3C0C141252765040BA271CB4A102E3839634A270C71793DF19"}',
    webhookSignature: 'v1,rY66jiHRVGTOXwnpJweTX3YFPIPtoveesHgpXR6k6r8=',
  },
  {
    name: 'a UTF-8 value, MD5',
    signType: 'MD5' as const,
    payload:
      '{"event_id":"evt_01HWKA00000000000000000003","type":"order.paid","order_no":"KA1006","transaction_id":"TX-KA1006","amount":"1000","currency":"JPY","status":"paid","paid_at":"2024-05-01T08:00:05.000Z","seq":1,"subject":"测试订单 ☕"}',
    body: '{"event_id":"evt_01HWKA00000000000000000003","type":"order.paid","order_no":"KA1006","transaction_id":"TX-KA1006","amount":"1000","currency":"JPY","status":"paid","paid_at":"2024-05-01T08:00:05.000Z","seq":1,"subject":"测试订单 ☕","timestamp":1714550406,"nonce":"abababababababababababab","sign_type":"MD5","sign":"64C734DD4B843AADF46E0BBE3190B6B8"}',
    webhookSignature: 'v1,b5u210wobkTxLgCsHc7ELaFGjfJEvrXLPs3xvVI0wX8=',
  },
];

describe('outbound notifications match bodies and headers computed with PHP and openssl', () => {
  it('the test secret is the one the vectors were computed with', () => {
    expect(TEST_ENV.NOTIFY_SECRET).toBe(SECRET);
  });

  it.each(VECTORS)('$name', ({ signType, payload, body, webhookSignature }) => {
    const delivery = signedDelivery(payload, { secret: SECRET, signType }, NOW);
    expect(delivery.body).toBe(body);
    expect(delivery.headers).toMatchObject({
      'content-type': 'application/json',
      'webhook-id': JSON.parse(payload).event_id,
      'webhook-timestamp': '1714550406',
      'webhook-signature': webhookSignature,
    });
    expect(JSON.parse(delivery.body).nonce).toBe(NONCE);
  });

  it('the general path (a stored event already holding a timestamp) signs the same way', () => {
    // The stored timestamp is replaced by the attempt's: the body is written again, and its sign is the first vector's.
    const [first] = VECTORS;
    const payload = first!.payload.replace('"seq":1}', '"seq":1,"timestamp":1}');
    const delivery = signedDelivery(payload, { secret: SECRET, signType: 'MD5' }, NOW);
    expect(JSON.parse(delivery.body)).toEqual(JSON.parse(first!.body));
  });
});
