import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isDisallowedAddress, resolveAllowed } from '../src/notifications/ssrf-guard.ts';
import { createTargetConnector } from '../src/notifications/target-connector.ts';
import { consolePage, signedInAgent } from './helpers/admin.ts';
import { ENGINES } from './helpers/engines.ts';
import { createDeliveryContext, type DeliveryContext } from './helpers/delivery-context.ts';
import { startReceiver, type Receiver } from './helpers/receiver.ts';

/** One sample per block of the IANA IPv4 Special-Purpose Address Registry, plus multicast and broadcast. */
const IPV4_SPECIAL: [string, string][] = [
  ['0.0.0.0/8 this network', '0.1.2.3'],
  ['0.0.0.0/32 this host', '0.0.0.0'],
  ['10.0.0.0/8 private', '10.1.2.3'],
  ['100.64.0.0/10 shared address space (CGNAT)', '100.64.0.1'],
  ['100.64.0.0/10 upper end', '100.127.255.254'],
  ['127.0.0.0/8 loopback', '127.0.0.1'],
  ['127.0.0.0/8 other loopback', '127.255.255.254'],
  ['169.254.0.0/16 link local (cloud metadata)', '169.254.169.254'],
  ['172.16.0.0/12 private', '172.16.0.1'],
  ['172.16.0.0/12 upper end', '172.31.255.255'],
  ['192.0.0.0/24 IETF protocol assignments', '192.0.0.100'],
  ['192.0.0.0/29 IPv4 service continuity prefix', '192.0.0.2'],
  ['192.0.0.8/32 IPv4 dummy address', '192.0.0.8'],
  ['192.0.0.9/32 PCP anycast', '192.0.0.9'],
  ['192.0.0.10/32 TURN anycast', '192.0.0.10'],
  ['192.0.0.170/32 NAT64/DNS64 discovery', '192.0.0.170'],
  ['192.0.0.171/32 NAT64/DNS64 discovery', '192.0.0.171'],
  ['192.0.2.0/24 documentation (TEST-NET-1)', '192.0.2.1'],
  ['192.31.196.0/24 AS112-v4', '192.31.196.1'],
  ['192.52.193.0/24 AMT', '192.52.193.1'],
  ['192.88.99.0/24 deprecated 6to4 relay anycast', '192.88.99.1'],
  ['192.88.99.2/32 6a44 relay anycast', '192.88.99.2'],
  ['192.168.0.0/16 private', '192.168.1.1'],
  ['192.175.48.0/24 direct delegation AS112', '192.175.48.1'],
  ['198.18.0.0/15 benchmarking', '198.18.0.1'],
  ['198.18.0.0/15 upper half', '198.19.255.1'],
  ['198.51.100.0/24 documentation (TEST-NET-2)', '198.51.100.1'],
  ['203.0.113.0/24 documentation (TEST-NET-3)', '203.0.113.1'],
  ['224.0.0.0/4 multicast', '224.0.0.1'],
  ['224.0.0.0/4 multicast (SSDP)', '239.255.255.250'],
  ['240.0.0.0/4 reserved', '240.0.0.1'],
  ['255.255.255.255/32 limited broadcast', '255.255.255.255'],
];

/** One sample per block of the IANA IPv6 Special-Purpose Address Registry, plus multicast and site-local. */
const IPV6_SPECIAL: [string, string][] = [
  ['::1/128 loopback', '::1'],
  ['::/128 unspecified', '::'],
  ['::ffff:0:0/96 IPv4-mapped loopback', '::ffff:127.0.0.1'],
  ['64:ff9b::/96 NAT64 of a private address', '64:ff9b::10.0.0.1'],
  ['64:ff9b:1::/48 local-use NAT64', '64:ff9b:1::808:808'],
  ['100::/64 discard-only', '100::1'],
  ['100:0:0:1::/64 dummy prefix', '100:0:0:1::1'],
  ['2001::/23 IETF protocol assignments', '2001:1ff::1'],
  ['2001::/32 Teredo', '2001:0:4136:e378:8000:63bf:3fff:fdd2'],
  ['2001:1::1/128 PCP anycast', '2001:1::1'],
  ['2001:1::2/128 TURN anycast', '2001:1::2'],
  ['2001:1::3/128 DNS-SD SRP anycast', '2001:1::3'],
  ['2001:2::/48 benchmarking', '2001:2::1'],
  ['2001:3::/32 AMT', '2001:3::1'],
  ['2001:4:112::/48 AS112-v6', '2001:4:112::1'],
  ['2001:10::/28 deprecated ORCHID', '2001:10::1'],
  ['2001:20::/28 ORCHIDv2', '2001:20::1'],
  ['2001:30::/28 drone remote ID tags', '2001:30::1'],
  ['2001:db8::/32 documentation', '2001:db8::1'],
  ['2002::/16 6to4', '2002:808:808::1'],
  ['2620:4f:8000::/48 direct delegation AS112', '2620:4f:8000::1'],
  ['3fff::/20 documentation', '3fff::1'],
  ['5f00::/16 segment routing SIDs', '5f00::1'],
  ['fc00::/7 unique local', 'fc00::1'],
  ['fc00::/7 unique local (fd)', 'fd12:3456::1'],
  ['fe80::/10 link local', 'fe80::1'],
  ['fe80::/10 link local with a zone', 'fe80::1%eth0'],
  ['fe80::/10 upper end', 'febf::1'],
  ['fec0::/10 deprecated site local', 'fec0::1'],
  ['ff00::/8 multicast', 'ff02::1'],
];

/** IPv6 spellings that carry an IPv4 address inside: each with a private, loopback or link-local address. */
const EMBEDDED_IPV4: [string, string][] = [
  ['IPv4-mapped loopback (hex)', '::ffff:7f00:1'],
  ['IPv4-mapped private (long form)', '0:0:0:0:0:ffff:a00:1'],
  ['IPv4-mapped link local', '::ffff:169.254.169.254'],
  ['IPv4-compatible loopback', '::127.0.0.1'],
  ['IPv4-compatible loopback (hex)', '::7f00:1'],
  ['IPv4-compatible link local', '::a9fe:a9fe'],
  ['IPv4-compatible private', '::10.0.0.1'],
  ['IPv4-translated loopback', '::ffff:0:7f00:1'],
  ['IPv4-translated private', '::ffff:0:192.168.1.1'],
  ['NAT64 loopback', '64:ff9b::7f00:1'],
  ['NAT64 link local', '64:ff9b::169.254.169.254'],
  ['local-use NAT64 private', '64:ff9b:1:c0a8:1:100::'],
  ['6to4 private', '2002:c0a8:0101::'],
  ['6to4 loopback', '2002:7f00:1::1'],
  ['Teredo with a private server', '2001:0:a00:1::1'],
];

describe('notification address guard', () => {
  it.each(IPV4_SPECIAL)('refuses IPv4 %s (%s)', (_block, ip) => {
    expect(isDisallowedAddress(ip)).toBe(true);
  });

  it.each(IPV6_SPECIAL)('refuses IPv6 %s (%s)', (_block, ip) => {
    expect(isDisallowedAddress(ip)).toBe(true);
  });

  it.each(EMBEDDED_IPV4)('refuses %s (%s)', (_form, ip) => {
    expect(isDisallowedAddress(ip)).toBe(true);
  });

  it.each([
    ['IPv4-compatible form of a public address (deprecated, never routed as IPv4)', '::8.8.8.8'],
    ['IPv4-translated form of a public address', '::ffff:0:8.8.8.8'],
    ['6to4 of a public address', '2002:808:808::'],
    ['Teredo', '2001:0:4136:e378::1'],
  ])('refuses the tunnel or translation form %s (%s)', (_form, ip) => {
    expect(isDisallowedAddress(ip)).toBe(true);
  });

  it.each(['not-an-ip', '', '0x7f.1', '2130706433', '127.1', '[::1]', '[::127.0.0.1]'])('refuses %j (not a plain public address)', (ip) => {
    expect(isDisallowedAddress(ip)).toBe(true);
  });

  it.each([
    '8.8.8.8',
    '1.1.1.1',
    '172.32.0.1',
    '100.128.0.1',
    '100.63.255.255',
    '192.0.1.1',
    '198.20.0.1',
    '223.255.255.254',
    '2606:4700:4700::1111',
    '2001:4860:4860::8888',
    '2001:200::1',
    '2a00:1450:4001:81b::200e',
    '::ffff:8.8.8.8',
    '64:ff9b::8.8.8.8',
    '64:ff9b::808:808',
  ])('allows the public unicast address %s', (ip) => {
    expect(isDisallowedAddress(ip)).toBe(false);
  });

  it('refuses embedded-IPv4 literals before any connection, and a name whose answers include one', async () => {
    for (const host of ['[::127.0.0.1]', '[::a9fe:a9fe]', '[::ffff:0:7f00:1]', '[2002:c0a8:101::]']) {
      await expect(resolveAllowed(host)).rejects.toThrow('destination_not_allowed');
    }
    const answers = async () => [
      { address: '93.184.215.14', family: 4 },
      { address: '::7f00:1', family: 6 },
    ];
    await expect(resolveAllowed('mixed.example', answers)).rejects.toThrow('resolves to ::7f00:1');
    const onlyPublic = async () => [{ address: '2606:4700:4700::1111', family: 6 }];
    await expect(resolveAllowed('public.example', onlyPublic)).resolves.toEqual({ address: '2606:4700:4700::1111', family: 6 });
  });

  it('the delivery connector applies the same rule to the answers it connects to (no rebinding to an embedded-IPv4 form)', async () => {
    const rebound = async () => [{ address: '::ffff:0:7f00:1', family: 6 }];
    const { connect } = createTargetConnector(1000, false, rebound);
    const err = await new Promise<Error | null>((resolve) =>
      connect({ hostname: 'rebind.example', host: 'rebind.example', protocol: 'http:', port: '' }, (...args) => resolve(args[0])),
    );
    expect(err).toMatchObject({ code: 'destination_not_allowed' });
    expect(err!.message).toContain('::ffff:0:7f00:1');
  });
});

describe.each(ENGINES)('delivery to embedded-IPv4 literals with private networks disallowed on %s', (engine) => {
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
    ['IPv4-compatible loopback', (port: number) => `http://[::127.0.0.1]:${port}/notify`],
    ['IPv4-translated loopback', (port: number) => `http://[::ffff:0:7f00:1]:${port}/notify`],
  ])('%s: abandoned with destination_not_allowed, nothing sent', async (_name, url) => {
    const orderNo = await ctx.paidOrder(url(receiver.port));
    await ctx.waitForStatus(orderNo, 'abandoned');
    const [event] = await ctx.events(orderNo);
    expect(event!.last_error).toBe('destination_not_allowed');
    const [attempt] = await ctx.attempts(orderNo);
    expect(attempt!.error).toContain('destination_not_allowed');
    expect(receiver.received).toHaveLength(0);
  });

  it('a plain private address is still refused (the production default): nothing sent, nothing to mark', async () => {
    const orderNo = await ctx.paidOrder(receiver.url);
    await ctx.waitForStatus(orderNo, 'abandoned');
    expect(receiver.received).toHaveLength(0);
    const detail = await ctx.api('get', `/api/orders/${orderNo}`);
    expect(detail.body.data.notifications[0].attempts).toEqual([expect.objectContaining({ private_target: false, response_excerpt: null })]);
  });
});

describe.each(ENGINES)('attempts to a private address with private networks allowed (development) on %s', (engine) => {
  let ctx: DeliveryContext;
  let receiver: Receiver;
  beforeAll(async () => {
    ctx = await createDeliveryContext(engine, { NOTIFY_ALLOW_PRIVATE_NETWORKS: 'true' });
    receiver = await startReceiver((n, res) => {
      if (n === 0) res.statusCode = 500;
      res.end(n === 0 ? '{"internal":"service answer"}' : 'success');
    });
  });
  afterAll(async () => {
    await ctx.close();
    await receiver.close();
  });

  it('are recorded, listed in the API and badged in the console as private_target', async () => {
    const orderNo = await ctx.paidOrder(receiver.url);
    await ctx.waitForStatus(orderNo, 'delivered');
    const stored = await ctx.db.kysely
      .selectFrom('notification_attempts')
      .innerJoin('notifications', 'notifications.id', 'notification_attempts.notification_id')
      .select(['attempt_no', 'private_target', 'response_excerpt'])
      .where('notifications.order_no', '=', orderNo)
      .orderBy('attempt_no')
      .execute();
    expect(stored.map((a) => [a.attempt_no, Number(a.private_target)])).toEqual([
      [1, 1],
      [2, 1],
    ]);
    expect(stored[0]!.response_excerpt).toContain('internal');

    const detail = await ctx.api('get', `/api/orders/${orderNo}`);
    expect(detail.status).toBe(200);
    expect(detail.body.data.notifications[0].attempts.map((a: { private_target: boolean }) => a.private_target)).toEqual([true, true]);

    const agent = await signedInAgent(ctx.app);
    const { html } = await consolePage(agent, `/admin/orders/${orderNo}`);
    expect(html.match(/data-field="private-target"/g)).toHaveLength(2);
    expect(html).toContain('private address');
  });

  it('an attempt that never connected is not marked', async () => {
    const closed = await startReceiver();
    const url = closed.url;
    await closed.close();
    const orderNo = await ctx.paidOrder(url);
    await ctx.waitForStatus(orderNo, 'dead');
    const detail = await ctx.api('get', `/api/orders/${orderNo}`);
    const attempts = detail.body.data.notifications[0].attempts as { private_target: boolean; error: string }[];
    expect(attempts[0]!.error).toContain('ECONNREFUSED');
    expect(attempts.every((a) => a.private_target === false)).toBe(true);
  });
});
