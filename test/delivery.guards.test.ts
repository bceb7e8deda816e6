import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isDisallowedAddress, resolveAllowed } from '../src/notifications/ssrf-guard.ts';
import { parseRetryAfter, nextState } from '../src/notifications/retry-policy.ts';
import { ENGINES } from './helpers/engines.ts';
import { createDeliveryContext, type DeliveryContext } from './helpers/delivery-context.ts';
import { startReceiver, type Receiver } from './helpers/receiver.ts';

describe.each(ENGINES)('delivery with private networks disallowed on %s', (engine) => {
  let ctx: DeliveryContext;
  let receiver: Receiver;
  beforeAll(async () => {
    ctx = await createDeliveryContext(engine, { NOTIFY_ALLOW_PRIVATE_NETWORKS: 'false' });
    receiver = await startReceiver();
  });
  afterAll(async () => {
    await ctx.close();
    await receiver.close();
  });

  it.each([
    ['loopback', (port: number) => `http://127.0.0.1:${port}/notify`],
    ['IPv4-mapped loopback', (port: number) => `http://[::ffff:127.0.0.1]:${port}/notify`],
    ['localhost', (port: number) => `http://localhost:${port}/notify`],
    ['IPv6 loopback', (port: number) => `http://[::1]:${port}/notify`],
    ['a name resolving to loopback', (port: number) => `http://127.0.0.1.nip.invalid.localhost:${port}/notify`],
  ])('never contacts %s: abandoned with destination_not_allowed', async (_name, url) => {
    const orderNo = await ctx.paidOrder(url(receiver.port));
    await ctx.waitForStatus(orderNo, 'abandoned');
    const [event] = await ctx.events(orderNo);
    expect(event!.last_error).toBe('destination_not_allowed');
    expect(event!.attempts).toBe(1);
    const [attempt] = await ctx.attempts(orderNo);
    expect(attempt!.error).toContain('destination_not_allowed');
    expect(receiver.received).toHaveLength(0);
  });
});

describe.each(ENGINES)('NOTIFY_EXPECT_BODY on %s', (engine) => {
  let ctx: DeliveryContext;
  beforeAll(async () => {
    ctx = await createDeliveryContext(engine, { NOTIFY_EXPECT_BODY: 'success', NOTIFY_RETRY_SCHEDULE: '100ms,100ms' });
  });
  afterAll(() => ctx.close());

  it('a 2xx without the expected body is a failure; trimmed, case-insensitive match delivers', async () => {
    const bodies = ['ok', '{"success":true}', '  SUCCESS \n'];
    const receiver = await startReceiver((n, res) => res.end(bodies[n] ?? 'success'));
    try {
      const orderNo = await ctx.paidOrder(receiver.url);
      await ctx.waitForStatus(orderNo, 'delivered');
      const attempts = await ctx.attempts(orderNo);
      expect(attempts.map((a) => a.status_code)).toEqual([200, 200, 200]);
      expect(attempts[0]!.error).toContain('expected body');
      expect(attempts[2]!.error).toBeNull();
    } finally {
      await receiver.close();
    }
  });
});

describe('SSRF guard', () => {
  it.each([
    '127.0.0.1',
    '127.255.255.254',
    '10.1.2.3',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.1.1',
    '169.254.169.254',
    '100.64.0.1',
    '0.0.0.0',
    '224.0.0.1',
    '255.255.255.255',
    '192.0.2.1',
    '198.18.0.1',
    '::1',
    '::',
    'fe80::1',
    'fc00::1',
    'fd12:3456::1',
    'ff02::1',
    '::ffff:127.0.0.1',
    '::ffff:10.0.0.1',
    '::ffff:7f00:1',
    '0:0:0:0:0:ffff:a00:1',
    '[::1]',
    '2001:db8::1',
    'not-an-ip',
  ])('refuses %s', (ip) => {
    expect(isDisallowedAddress(ip)).toBe(true);
  });

  it.each(['8.8.8.8', '1.1.1.1', '172.32.0.1', '100.128.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8'])('allows %s', (ip) => {
    expect(isDisallowedAddress(ip)).toBe(false);
  });

  it('refuses localhost names and private literals before any connection', async () => {
    await expect(resolveAllowed('localhost')).rejects.toThrow('destination_not_allowed');
    await expect(resolveAllowed('api.localhost')).rejects.toThrow('destination_not_allowed');
    await expect(resolveAllowed('[::ffff:7f00:1]')).rejects.toThrow('destination_not_allowed');
    await expect(resolveAllowed('8.8.8.8')).resolves.toEqual({ address: '8.8.8.8', family: 4 });
  });
});

describe('retry policy', () => {
  const now = new Date('2026-11-25T12:00:00Z');
  it('parses Retry-After as seconds or an HTTP date, capped at a day', () => {
    expect(parseRetryAfter('3', now)).toBe(3000);
    expect(parseRetryAfter('Wed, 25 Nov 2026 12:00:10 GMT', now)).toBe(10_000);
    expect(parseRetryAfter('Wed, 25 Nov 2026 11:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('999999999', now)).toBe(86_400_000);
    expect(parseRetryAfter('soon', now)).toBeNull();
    expect(parseRetryAfter(undefined, now)).toBeNull();
  });

  it('walks the schedule, honours Retry-After when longer, and ends dead', () => {
    const schedule = [15_000, 60_000];
    expect(nextState({ kind: 'failed', reason: 'HTTP 500' }, 0, schedule, now)).toMatchObject({
      status: 'pending',
      scheduleStep: 1,
      nextAttemptAt: new Date(now.getTime() + 15_000),
    });
    expect(nextState({ kind: 'failed', reason: 'HTTP 503', retryAfterMs: 120_000 }, 1, schedule, now)).toMatchObject({
      status: 'pending',
      scheduleStep: 2,
      nextAttemptAt: new Date(now.getTime() + 120_000),
    });
    expect(nextState({ kind: 'failed', reason: 'HTTP 503', retryAfterMs: 1_000 }, 1, schedule, now)).toMatchObject({
      nextAttemptAt: new Date(now.getTime() + 60_000),
    });
    expect(nextState({ kind: 'failed', reason: 'HTTP 500' }, 2, schedule, now)).toMatchObject({ status: 'dead' });
    expect(nextState({ kind: 'abandoned', reason: 'HTTP 410' }, 0, schedule, now)).toEqual({ status: 'abandoned', reason: 'HTTP 410' });
    expect(nextState({ kind: 'delivered' }, 1, schedule, now)).toEqual({ status: 'delivered' });
  });
});
