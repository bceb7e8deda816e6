import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

type IPv4 = ReturnType<typeof ipaddr.IPv4.parse>;
type IPv6 = ReturnType<typeof ipaddr.IPv6.parse>;

/** IANA special-purpose IPv6 blocks that ipaddr.js files under 'unicast'. */
const V6_SPECIAL_EXTRA = [
  ipaddr.IPv6.parseCIDR('::/96'), // IPv4-compatible (deprecated): never a real destination
  ipaddr.IPv6.parseCIDR('100:0:0:1::/64'), // dummy prefix (RFC 9780)
];
// The well-known NAT64 prefix only ever carries a global IPv4 address (RFC 6052 3.1); DNS64 on IPv6-only hosts answers with it.
const NAT64_WELL_KNOWN = ipaddr.IPv6.parseCIDR('64:ff9b::/96');

/** `[::1]` (a URL's IPv6 host) → `::1`. */
export const bareHost = (hostname: string) => hostname.replace(/^\[|\]$/g, '');

const publicV4 = (address: IPv4) => address.range() === 'unicast';
const embeddedV4 = (address: IPv6) => ipaddr.fromByteArray(address.toByteArray().slice(12)) as IPv4;

/**
 * True for any address a merchant notification must never reach when private networks are disallowed:
 * everything but global unicast (ipaddr.js ranges). An IPv4-mapped or well-known-prefix NAT64 address is judged
 * by the IPv4 address inside; every other tunnel or translation form (6to4, Teredo, IPv4-compatible,
 * IPv4-translated, local-use NAT64) is refused whatever it carries.
 */
export function isDisallowedAddress(ip: string): boolean {
  // Node's check first: ipaddr.js would also read 0x7f.1, 127.1 or 2130706433 as IPv4.
  const version = isIP(ip);
  if (version === 4) return !publicV4(ipaddr.IPv4.parse(ip));
  // A zone index only goes with link-local or other scoped addresses.
  if (version === 0 || ip.includes('%')) return true;
  // Hex groups only: ipaddr.js reads the IPv4-compatible ::a.b.c.d as if it were the IPv4-mapped ::ffff:a.b.c.d.
  const v6 = ipaddr.IPv6.parse(bareHost(new URL(`http://[${ip}]/`).hostname));
  const range = v6.range();
  if (range === 'ipv4Mapped') return !publicV4(v6.toIPv4Address());
  if (range === 'rfc6052' && v6.match(NAT64_WELL_KNOWN)) return !publicV4(embeddedV4(v6));
  return range !== 'unicast' || V6_SPECIAL_EXTRA.some((block) => v6.match(block));
}

export class DestinationNotAllowedError extends Error {
  readonly code = 'destination_not_allowed';
  constructor(host: string, address?: string) {
    super(`destination_not_allowed: ${host}${address && address !== host ? ` resolves to ${address}` : ''}, a private or reserved address`);
  }
}

export type Lookup = (hostname: string) => Promise<ReadonlyArray<{ address: string; family: number }>>;
const systemLookup: Lookup = (hostname) => lookup(hostname, { all: true, verbatim: true });

/** Resolves `hostname` and refuses it when any answer is disallowed (no mixing a public and a private record). */
export async function resolveAllowed(hostname: string, resolve: Lookup = systemLookup): Promise<{ address: string; family: 4 | 6 }> {
  const host = bareHost(hostname);
  if (host.toLowerCase() === 'localhost' || host.toLowerCase().endsWith('.localhost')) throw new DestinationNotAllowedError(host);
  const literal = isIP(host);
  const answers = literal ? [{ address: host, family: literal }] : await resolve(host);
  const bad = answers.find((a) => isDisallowedAddress(a.address));
  if (bad || answers.length === 0) throw new DestinationNotAllowedError(host, bad?.address);
  return { address: answers[0]!.address, family: answers[0]!.family as 4 | 6 };
}
