import net from 'node:net';
import tls from 'node:tls';
import { Agent } from 'undici';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { attemptDelivery, type DeliveryAgent } from '../src/notifications/delivery.ts';
import { resolveAllowed, type Lookup } from '../src/notifications/ssrf-guard.ts';
import { createTargetConnector } from '../src/notifications/target-connector.ts';

/*
 * The DNS path of the notification address guard, with an injected resolver: names that no name rule catches
 * (not localhost), answer sets that are private, cloud metadata or mixed, and the address the connection then
 * uses. Nothing here leaves the machine: every socket the connector opens is recorded and sent to a closed
 * local port instead, so a test sees where the service would have connected.
 */

const HOST = 'hooks.merchant.example';
const PUBLIC_A = '93.184.215.14';
const PUBLIC_B = '8.8.4.4';

type Answers = ReadonlyArray<{ address: string; family: number }>;
const v4 = (address: string) => ({ address, family: 4 });
const v6 = (address: string) => ({ address, family: 6 });

/** A resolver answering `sets[i]` on its i-th call (the last set again after that), recording the names asked. */
function resolver(...sets: Answers[]) {
  const asked: string[] = [];
  const lookup: Lookup = async (hostname) => {
    asked.push(hostname);
    return sets[Math.min(asked.length - 1, sets.length - 1)]!;
  };
  return { lookup, asked };
}

const REFUSED: Array<[string, Answers, string | null]> = [
  ['a private address', [v4('10.0.0.5')], '10.0.0.5'],
  ['the cloud metadata address', [v4('169.254.169.254')], '169.254.169.254'],
  ['the IPv6 cloud metadata address', [v6('fd00:ec2::254')], 'fd00:ec2::254'],
  ['loopback (a name no name rule catches)', [v4('127.0.0.1')], '127.0.0.1'],
  ['public, then private', [v4(PUBLIC_A), v4('10.0.0.5')], '10.0.0.5'],
  ['public, then the metadata address', [v4(PUBLIC_A), v4('169.254.169.254')], '169.254.169.254'],
  ['private, then public', [v4('192.168.1.10'), v4(PUBLIC_A)], '192.168.1.10'],
  ['public IPv6, then metadata as IPv4-mapped IPv6', [v6('2606:4700:4700::1111'), v6('::ffff:169.254.169.254')], '::ffff:169.254.169.254'],
  ['two public, the third shared address space', [v4(PUBLIC_A), v4(PUBLIC_B), v4('100.64.0.1')], '100.64.0.1'],
  ['no answer at all', [], null],
];

describe('resolveAllowed: every DNS answer is checked', () => {
  it.each(REFUSED)('refuses a name resolving to %s', async (_what, answers, bad) => {
    const { lookup, asked } = resolver(answers);
    const refusal = resolveAllowed(HOST, lookup);
    await expect(refusal).rejects.toMatchObject({ code: 'destination_not_allowed' });
    if (bad) await expect(refusal).rejects.toThrow(`${HOST} resolves to ${bad}`);
    expect(asked).toEqual([HOST]);
  });

  it('allows a name whose answers are all public, and names the first answer as the address to use', async () => {
    const { lookup, asked } = resolver([v4(PUBLIC_A), v4(PUBLIC_B), v6('2606:4700:4700::1111')]);
    await expect(resolveAllowed(HOST, lookup)).resolves.toEqual({ address: PUBLIC_A, family: 4 });
    expect(asked).toEqual([HOST]);
  });

  it('asks the resolver for every name, and for no IP literal', async () => {
    const { lookup, asked } = resolver([v4(PUBLIC_A)]);
    await expect(resolveAllowed('[2606:4700:4700::1111]', lookup)).resolves.toEqual({ address: '2606:4700:4700::1111', family: 6 });
    await expect(resolveAllowed(PUBLIC_B, lookup)).resolves.toEqual({ address: PUBLIC_B, family: 4 });
    await expect(resolveAllowed('169.254.169.254', lookup)).rejects.toMatchObject({ code: 'destination_not_allowed' });
    expect(asked).toEqual([]);
    await resolveAllowed('a.example', lookup);
    await resolveAllowed('xn--bcher-kva.example', lookup);
    expect(asked).toEqual(['a.example', 'xn--bcher-kva.example']);
  });
});

describe('the delivery connector (private networks disallowed) connects only to the address it checked', () => {
  let closedPort = 0;
  const dialed: Array<{ via: 'net' | 'tls'; host: unknown; port: unknown; servername?: unknown }> = [];
  const realConnect = net.connect;

  beforeAll(async () => {
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    closedPort = (probe.address() as net.AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
  });

  beforeEach(() => {
    dialed.length = 0;
    // undici opens its sockets with net.connect / tls.connect: record where, and connect to a closed local port instead.
    vi.spyOn(net, 'connect').mockImplementation(((options: net.TcpNetConnectOpts) => {
      dialed.push({ via: 'net', host: options.host, port: Number(options.port) });
      return realConnect({ host: '127.0.0.1', port: closedPort });
    }) as typeof net.connect);
    vi.spyOn(tls, 'connect').mockImplementation(((options: tls.ConnectionOptions) => {
      dialed.push({ via: 'tls', host: options.host, port: Number(options.port), servername: options.servername });
      return realConnect({ host: '127.0.0.1', port: closedPort }) as unknown as tls.TLSSocket;
    }) as typeof tls.connect);
  });
  afterEach(() => vi.restoreAllMocks());

  function connectWith(lookup: Lookup, protocol: 'http:' | 'https:' = 'http:', port = '8443') {
    const { connect } = createTargetConnector(1000, false, lookup);
    return new Promise<Error | null>((resolve) => {
      connect({ hostname: HOST, host: `${HOST}:${port}`, protocol, port }, (err, socket) => {
        socket?.destroy();
        resolve(err);
      });
    });
  }

  it.each(REFUSED)('refuses a name resolving to %s, and opens no connection', async (_what, answers, bad) => {
    const { lookup } = resolver(answers);
    const err = await connectWith(lookup);
    expect(err).toMatchObject({ code: 'destination_not_allowed' });
    if (bad) expect(err!.message).toContain(`resolves to ${bad}`);
    expect(dialed).toEqual([]);
  });

  it('resolves once and connects to the checked address, not to whatever the name resolves to next (no rebinding)', async () => {
    // The first answer is checked and public; a second lookup would answer loopback.
    const { lookup, asked } = resolver([v4(PUBLIC_A)], [v4('127.0.0.1')]);
    const err = await connectWith(lookup);
    expect(dialed).toEqual([{ via: 'net', host: PUBLIC_A, port: 8443 }]);
    expect(asked).toEqual([HOST]);
    expect((err as Error & { code?: string }).code).toBe('ECONNREFUSED'); // the stand-in for the public address
  });

  it('over HTTPS too: the socket goes to the checked address and TLS still verifies the certificate for the name', async () => {
    const { lookup, asked } = resolver([v4(PUBLIC_B)], [v4('10.0.0.1')]);
    await connectWith(lookup, 'https:', '443');
    expect(dialed).toEqual([{ via: 'tls', host: PUBLIC_B, port: 443, servername: HOST }]);
    expect(asked).toEqual([HOST]);
  });

  describe('through a delivery attempt', () => {
    const settings = {
      secret: `whsec_${Buffer.alloc(32, 7).toString('base64')}`,
      signType: 'MD5' as const,
      timeoutMs: 1000,
      expectBody: null,
      allowPrivateNetworks: false,
    };
    const payload = JSON.stringify({
      event_id: 'evt_ssrf_dns',
      type: 'order.paid',
      order_no: 'SSRF1',
      transaction_id: 'T1',
      amount: '1.00',
      currency: 'CNY',
      status: 'paid',
      paid_at: null,
      seq: 1,
    });

    async function attempt(lookup: Lookup) {
      const target = createTargetConnector(settings.timeoutMs, false, lookup);
      const agent = Object.assign(new Agent({ connect: target.connect }), { reachesPrivate: target.reachesPrivate }) as DeliveryAgent;
      try {
        return await attemptDelivery(`http://${HOST}:8080/notify`, payload, settings, agent, new Date());
      } finally {
        await agent.close();
      }
    }

    it.each([
      ['the metadata address', [v4('169.254.169.254')]],
      ['a mixed answer set', [v4(PUBLIC_A), v4('172.16.0.9')]],
    ] as Array<[string, Answers]>)('a name resolving to %s: abandoned as destination_not_allowed, nothing sent', async (_what, answers) => {
      const result = await attempt(resolver(answers).lookup);
      expect(result.verdict).toEqual({ kind: 'abandoned', reason: 'destination_not_allowed' });
      expect(result.error).toContain(`${HOST} resolves to`);
      expect(dialed).toEqual([]);
    });

    it('a public answer: the attempt goes to that address (a connection error here, retried later)', async () => {
      const { lookup, asked } = resolver([v4(PUBLIC_A)], [v4('127.0.0.1')]);
      const result = await attempt(lookup);
      expect(dialed).toEqual([{ via: 'net', host: PUBLIC_A, port: 8080 }]);
      expect(asked).toEqual([HOST]);
      expect(result.verdict.kind).toBe('failed');
      expect(result.error).toContain('ECONNREFUSED');
    });
  });
});
