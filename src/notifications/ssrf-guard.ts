import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { buildConnector } from 'undici';
import { normalizeIp } from '../shared/ip-allowlist.ts';

/** Loopback, private, link-local, CGNAT, multicast, unspecified, documentation and other reserved ranges. */
const V4_BLOCKED = [
  '0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '172.16.0.0/12', '192.0.0.0/24',
  '192.0.2.0/24', '192.88.99.0/24', '192.168.0.0/16', '198.18.0.0/15', '198.51.100.0/24', '203.0.113.0/24',
  '224.0.0.0/4', '240.0.0.0/4',
];
const V6_BLOCKED = [
  '::/128', '::1/128', '64:ff9b::/96', '64:ff9b:1::/48', '100::/64', '2001::/23', '2001:db8::/32',
  '2002::/16', 'fc00::/7', 'fe80::/10', 'fec0::/10', 'ff00::/8',
];

// Separate lists: a BlockList holding IPv6 rules would also match IPv4 addresses as if they were mapped.
const blockedV4 = new BlockList();
const blockedV6 = new BlockList();
for (const cidr of V4_BLOCKED) blockedV4.addSubnet(cidr.split('/')[0]!, Number(cidr.split('/')[1]), 'ipv4');
for (const cidr of V6_BLOCKED) blockedV6.addSubnet(cidr.split('/')[0]!, Number(cidr.split('/')[1]), 'ipv6');

/** The eight 16-bit groups of an IPv6 address (`::` expanded; a dotted IPv4 tail converted). */
function ipv6Groups(address: string): number[] {
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(address);
  let text = address;
  if (dotted) {
    const [a, b, c, d] = dotted[1]!.split('.').map(Number) as [number, number, number, number];
    text = address.slice(0, -dotted[1]!.length) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const parse = (part: string) => (part ? part.split(':').map((g) => parseInt(g, 16)) : []);
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  return [...left, ...Array(8 - left.length - right.length).fill(0), ...right];
}

/** `::ffff:7f00:1` (any spelling of an IPv4-mapped address) → `127.0.0.1`; otherwise null. */
function mappedIpv4(address: string): string | null {
  const g = ipv6Groups(address);
  if (g.slice(0, 5).some((x) => x !== 0) || g[5] !== 0xffff) return null;
  return [g[6]! >> 8, g[6]! & 255, g[7]! >> 8, g[7]! & 255].join('.');
}

/** True for any address a merchant notification must never reach when private networks are disallowed. */
export function isDisallowedAddress(ip: string): boolean {
  const address = normalizeIp(ip.replace(/^\[|\]$/g, ''));
  const version = isIP(address);
  if (version === 4) return blockedV4.check(address, 'ipv4');
  if (version === 0) return true;
  const mapped = mappedIpv4(address);
  return mapped !== null ? blockedV4.check(mapped, 'ipv4') : blockedV6.check(address, 'ipv6');
}

export class DestinationNotAllowedError extends Error {
  readonly code = 'destination_not_allowed';
  constructor(host: string, address?: string) {
    super(`destination_not_allowed: ${host}${address && address !== host ? ` resolves to ${address}` : ''}, a private or reserved address`);
  }
}

/** Resolves `hostname` and refuses it when any answer is disallowed (no mixing a public and a private record). */
export async function resolveAllowed(hostname: string): Promise<{ address: string; family: 4 | 6 }> {
  const host = hostname.replace(/^\[|\]$/g, '');
  if (host.toLowerCase() === 'localhost' || host.toLowerCase().endsWith('.localhost')) throw new DestinationNotAllowedError(host);
  const literal = isIP(host);
  const answers = literal ? [{ address: host, family: literal }] : await lookup(host, { all: true, verbatim: true });
  const bad = answers.find((a) => isDisallowedAddress(a.address));
  if (bad || answers.length === 0) throw new DestinationNotAllowedError(host, bad?.address);
  return { address: answers[0]!.address, family: answers[0]!.family as 4 | 6 };
}

type Connector = ReturnType<typeof buildConnector>;

/**
 * An undici connector that connects to the very address it checked, so DNS cannot change between the
 * check and the connection (no rebinding window). TLS still verifies the certificate for the host name.
 */
export function guardedConnector(timeoutMs: number): Connector {
  const base = buildConnector({ timeout: timeoutMs });
  return (options, callback) => {
    resolveAllowed(options.hostname).then(
      ({ address }) => base({ ...options, hostname: address, servername: options.servername ?? (isIP(options.hostname.replace(/^\[|\]$/g, '')) ? undefined : options.hostname) }, callback),
      (err: Error) => callback(err, null),
    );
  };
}
