import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import { ENGINES } from './helpers/engines.ts';
import { createDeliveryContext, type DeliveryContext } from './helpers/delivery-context.ts';
import { startReceiver } from './helpers/receiver.ts';
import { waitPastRetryInterval } from './helpers/retry-wait.ts';

/** Independent A7 check: MD5 over sorted non-empty fields except sign, numbers as JSON writes them. */
function md5Sign(body: Record<string, unknown>, secret: string): string {
  const text = Object.keys(body)
    .filter((k) => k !== 'sign' && body[k] !== null && body[k] !== '')
    .sort()
    .map((k) => `${k}=${typeof body[k] === 'string' ? body[k] : JSON.stringify(body[k])}`)
    .join('&');
  return createHash('md5').update(`${text}&key=${secret}`).digest('hex').toUpperCase();
}

describe.each(ENGINES)('merchant notification delivery on %s', (engine) => {
  let ctx: DeliveryContext;
  beforeAll(async () => {
    ctx = await createDeliveryContext(engine);
  });
  afterAll(() => ctx.close());

  it('delivers a paid event once, quickly, with the A7 body, legacy sign and Standard Webhooks headers', async () => {
    const receiver = await startReceiver();
    try {
      const started = Date.now();
      const orderNo = await ctx.paidOrder(receiver.url, '12.34');
      const [got] = await receiver.waitFor(1);
      expect(got!.at - started).toBeLessThan(5000);
      await ctx.waitForStatus(orderNo, 'delivered');
      expect(got!.headers['content-type']).toBe('application/json');
      expect(got!.headers['user-agent']).toMatch(/^payment-callback-service\//);
      const body = JSON.parse(got!.body);
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
        type: 'order.paid',
        order_no: orderNo,
        transaction_id: `T-${orderNo}`,
        amount: '12.34',
        currency: 'CNY',
        status: 'paid',
        seq: 1,
        sign_type: 'MD5',
      });
      expect(typeof body.timestamp).toBe('number');
      expect(Math.abs(body.timestamp - Date.now() / 1000)).toBeLessThan(10);
      expect(body.sign).toBe(md5Sign(body, ctx.config.secrets.NOTIFY_SECRET));
      expect(md5Sign({ ...body, amount: '0.01' }, ctx.config.secrets.NOTIFY_SECRET)).not.toBe(body.sign);
      const webhook = new Webhook(ctx.config.secrets.NOTIFY_SECRET);
      const headers = {
        'webhook-id': String(got!.headers['webhook-id']),
        'webhook-timestamp': String(got!.headers['webhook-timestamp']),
        'webhook-signature': String(got!.headers['webhook-signature']),
      };
      expect(webhook.verify(got!.body, headers)).toMatchObject({ event_id: body.event_id });
      expect(headers['webhook-id']).toBe(body.event_id);
      expect(() => webhook.verify(got!.body.replace('12.34', '12.35'), headers)).toThrow();
      await waitPastRetryInterval(ctx.config.notify); // no second delivery, not even after a retry's delay
      expect(receiver.received).toHaveLength(1);
      const detail = await ctx.api('get', `/api/orders/${orderNo}`);
      expect(detail.body.data.notifications[0]).toMatchObject({ status: 'delivered', attempt_count: 1, event_id: body.event_id });
      expect(detail.body.data.notifications[0].attempts).toEqual([
        expect.objectContaining({ attempt_no: 1, status_code: 200, error: null, response_excerpt: 'success' }),
      ]);
    } finally {
      await receiver.close();
    }
  });

  it('500, 500, 200 → three attempts, delivered, each recorded', async () => {
    const receiver = await startReceiver((n, res) => {
      res.statusCode = n < 2 ? 500 : 200;
      res.end(n < 2 ? 'boom' : 'ok');
    });
    try {
      const orderNo = await ctx.paidOrder(receiver.url);
      await ctx.waitForStatus(orderNo, 'delivered');
      expect(receiver.received).toHaveLength(3);
      const ids = new Set(receiver.received.map((r) => JSON.parse(r.body).event_id));
      expect(ids.size).toBe(1);
      const attempts = await ctx.attempts(orderNo);
      expect(attempts.map((a) => [a.attempt_no, a.status_code])).toEqual([
        [1, 500],
        [2, 500],
        [3, 200],
      ]);
      expect(attempts[0]!.error).toBe('HTTP 500');
      expect((await ctx.events(orderNo))[0]).toMatchObject({ status: 'delivered', attempts: 3, last_error: null });
      expect(receiver.received[1]!.at - receiver.received[0]!.at).toBeGreaterThanOrEqual(180);
    } finally {
      await receiver.close();
    }
  });

  it('410 → abandoned after one attempt', async () => {
    const receiver = await startReceiver((_n, res) => {
      res.statusCode = 410;
      res.end('gone');
    });
    try {
      const orderNo = await ctx.paidOrder(receiver.url);
      await ctx.waitForStatus(orderNo, 'abandoned');
      await waitPastRetryInterval(ctx.config.notify); // abandoned: no retry comes
      expect(receiver.received).toHaveLength(1);
      expect((await ctx.events(orderNo))[0]!.last_error).toContain('410');
    } finally {
      await receiver.close();
    }
  });

  it('503 with Retry-After: 3 is respected', async () => {
    const receiver = await startReceiver((n, res) => {
      if (n === 0) {
        res.statusCode = 503;
        res.setHeader('Retry-After', '3');
      }
      res.end('later');
    });
    try {
      const orderNo = await ctx.paidOrder(receiver.url);
      await ctx.waitForStatus(orderNo, 'delivered', 10_000);
      expect(receiver.received).toHaveLength(2);
      expect(receiver.received[1]!.at - receiver.received[0]!.at).toBeGreaterThanOrEqual(2900);
    } finally {
      await receiver.close();
    }
  });

  it('a slow receiver past the timeout: the attempt is recorded as a timeout, retried and delivered', async () => {
    const receiver = await startReceiver((n, res) => {
      if (n === 0) setTimeout(() => res.end('too late'), 2500);
      else res.end('ok');
    });
    try {
      const orderNo = await ctx.paidOrder(receiver.url);
      await ctx.waitForStatus(orderNo, 'delivered', 10_000);
      const attempts = await ctx.attempts(orderNo);
      expect(attempts[0]).toMatchObject({ attempt_no: 1, status_code: null });
      expect(attempts[0]!.error).toMatch(/timeout/i);
      expect(attempts[0]!.duration_ms).toBeGreaterThanOrEqual(900);
      expect(attempts[0]!.duration_ms).toBeLessThan(2400);
      expect(attempts.at(-1)).toMatchObject({ status_code: 200 });
    } finally {
      await receiver.close();
    }
  });

  it('a 302 is a failure and is not followed', async () => {
    const target = await startReceiver();
    const receiver = await startReceiver((n, res) => {
      if (n === 0) {
        res.statusCode = 302;
        res.setHeader('Location', target.url);
      }
      res.end();
    });
    try {
      const orderNo = await ctx.paidOrder(receiver.url);
      await ctx.waitForStatus(orderNo, 'delivered');
      const attempts = await ctx.attempts(orderNo);
      expect(attempts.map((a) => a.status_code)).toEqual([302, 200]);
      expect(attempts[0]!.error).toContain('redirect');
      expect(target.received).toHaveLength(0);
    } finally {
      await receiver.close();
      await target.close();
    }
  });

  it('spending the schedule makes the event dead; a resend then delivers it', async () => {
    let healthy = false;
    const receiver = await startReceiver((_n, res) => {
      res.statusCode = healthy ? 200 : 500;
      res.end();
    });
    try {
      const orderNo = await ctx.paidOrder(receiver.url);
      await ctx.waitForStatus(orderNo, 'dead');
      expect(receiver.received).toHaveLength(4); // first attempt + one per schedule entry
      expect((await ctx.events(orderNo))[0]!.last_error).toContain('schedule spent');
      healthy = true;
      const resend = await ctx.api('post', `/api/orders/${orderNo}/notifications/resend`);
      expect(resend.status).toBe(202);
      expect(resend.body.data).toMatchObject({ order_no: orderNo, status: 'pending' });
      await ctx.waitForStatus(orderNo, 'delivered');
      expect(receiver.received).toHaveLength(5);
      expect((await ctx.attempts(orderNo)).map((a) => a.attempt_no)).toEqual([1, 2, 3, 4, 5]);
    } finally {
      await receiver.close();
    }
  });

  it('resend delivers a delivered event again with the same event_id; errors for unknown or event-less orders', async () => {
    const receiver = await startReceiver();
    try {
      const orderNo = await ctx.paidOrder(receiver.url);
      await ctx.waitForStatus(orderNo, 'delivered');
      expect((await ctx.api('post', `/api/orders/${orderNo}/notifications/resend`)).status).toBe(202);
      const [first, second] = await receiver.waitFor(2);
      expect(JSON.parse(second!.body).event_id).toBe(JSON.parse(first!.body).event_id);
      expect(JSON.parse(second!.body).nonce).not.toBe(JSON.parse(first!.body).nonce);
      expect((await ctx.api('post', '/api/orders/NOPE/notifications/resend')).status).toBe(404);
      await ctx.api('post', '/api/orders').send({ order_no: 'NO_EVENTS', amount: '1' });
      const none = await ctx.api('post', '/api/orders/NO_EVENTS/notifications/resend');
      expect(none.status).toBe(409);
      expect(none.body.code).toBe('invalid_state');
    } finally {
      await receiver.close();
    }
  });

  it('delivers the events of one order with increasing seq (closed → paid)', async () => {
    const receiver = await startReceiver();
    try {
      const orderNo = `SEQ${engine}`;
      await ctx.api('post', '/api/orders').send({ order_no: orderNo, amount: '10.00', notify_url: receiver.url });
      await ctx.api('post', `/api/orders/${orderNo}/close`);
      await receiver.waitFor(1);
      const { signed } = await import('./helpers/gateway-signer.ts');
      const { TEST_GATEWAY_SECRET } = await import('./helpers/context.ts');
      const { default: request } = await import('supertest');
      await request(ctx.app)
        .post('/notify')
        .type('form')
        .send(signed({ order_no: orderNo, transaction_id: 'LATE', amount: '10.00', status: 'success' }, TEST_GATEWAY_SECRET));
      await receiver.waitFor(2);
      expect(receiver.received.map((r) => [JSON.parse(r.body).type, JSON.parse(r.body).seq])).toEqual([
        ['order.closed', 1],
        ['order.paid', 2],
      ]);
    } finally {
      await receiver.close();
    }
  });
});
