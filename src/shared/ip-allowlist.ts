import { BlockList, isIP } from 'node:net';

/** An allowlist of IPv4/IPv6 addresses and CIDR ranges; `null` allowlists mean "anyone". */
export interface IpAllowlist {
  readonly entries: readonly string[];
  allows(ip: string | undefined): boolean;
}

/** `::ffff:10.0.0.1` and `10.0.0.1` are the same client. */
export function normalizeIp(ip: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
  return mapped ? mapped[1]! : ip;
}

function familyOf(ip: string): 'ipv4' | 'ipv6' | null {
  const version = isIP(ip);
  return version === 4 ? 'ipv4' : version === 6 ? 'ipv6' : null;
}

/** Parses `1.2.3.4, 10.0.0.0/8, ::1, 2001:db8::/32`; throws with the offending entry. */
export function parseIpAllowlist(value: string): IpAllowlist {
  const list = new BlockList();
  const entries = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (entries.length === 0) throw new Error('must list at least one IP address or CIDR range');
  for (const entry of entries) {
    const [rawAddress, prefix, extra] = entry.split('/');
    const address = normalizeIp(rawAddress ?? '');
    const family = familyOf(address);
    if (!family || extra !== undefined) throw new Error(`"${entry}" is not an IP address or CIDR range`);
    if (prefix === undefined) {
      list.addAddress(address, family);
      continue;
    }
    const bits = Number(prefix);
    const max = family === 'ipv4' ? 32 : 128;
    if (!/^\d{1,3}$/.test(prefix) || bits > max) throw new Error(`"${entry}" has an invalid prefix length`);
    list.addSubnet(address, bits, family);
  }
  return {
    entries,
    allows(ip) {
      if (!ip) return false;
      const candidate = normalizeIp(ip);
      const family = familyOf(candidate);
      return family !== null && list.check(candidate, family);
    },
  };
}
