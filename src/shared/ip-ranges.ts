import { isIP } from 'node:net';
import { normalizeIp, type IpAllowlist } from './ip-allowlist.ts';

/**
 * Set arithmetic on allowlist entries, so a narrowed allowlist can be checked and shown as the ranges
 * actually in force. Every entry is a range of the 128-bit space with IPv4 as IPv4-mapped IPv6
 * (::ffff:a.b.c.d), which is how node's BlockList matches the two families against each other.
 */

interface Range {
  entry: string;
  start: bigint;
  /** Prefix length in the 128-bit space. */
  bits: number;
}

const MAPPED_V4 = 0xffffn << 32n;

function ipv4Value(address: string): bigint {
  return address.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function ipv6Value(address: string): bigint {
  let text = address.split('%')[0]!;
  // An embedded IPv4 tail (::ffff:1.2.3.4) is the last two groups.
  const dotted = /(\d{1,3}(?:\.\d{1,3}){3})$/.exec(text);
  if (dotted) {
    const v4 = Number(ipv4Value(dotted[1]!));
    text = `${text.slice(0, -dotted[1]!.length)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const parse = (s: string) => (s === '' ? [] : s.split(':').map((h) => parseInt(h, 16)));
  const left = parse(head);
  const right = parse(rest ?? '');
  const groups = rest === undefined ? left : [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
}

/** The range of one entry as parseIpAllowlist reads it; null for text it would not accept. */
function rangeOf(entry: string): Range | null {
  const [raw, prefix] = entry.split('/');
  const address = normalizeIp(raw ?? '');
  const version = isIP(address);
  if (version === 0) return null;
  const width = version === 4 ? 32 : 128;
  const own = prefix === undefined ? width : Number(prefix);
  if (!Number.isInteger(own) || own < 0 || own > width) return null;
  const value = version === 4 ? MAPPED_V4 | ipv4Value(address) : ipv6Value(address);
  const bits = version === 4 ? own + 96 : own;
  const host = 128n - BigInt(bits);
  return { entry, start: (value >> host) << host, bits };
}

const ranges = (entries: readonly string[]) => entries.map(rangeOf).filter((r): r is Range => r !== null);

/** Whether `outer` contains `inner` (CIDR ranges are either nested or disjoint). */
const contains = (outer: Range, inner: Range) =>
  outer.bits <= inner.bits && outer.start >> BigInt(128 - outer.bits) === inner.start >> BigInt(128 - outer.bits);

/** Drops ranges contained in another one of the list (the first of equal ones stays). */
function outermost(list: Range[]): Range[] {
  return list.filter((r, i) => !list.some((o, j) => j !== i && contains(o, r) && (o.bits < r.bits || j < i)));
}

/** The entries allowed by both lists: each pair's narrower range, where they overlap. */
export function intersectEntries(a: readonly string[], b: readonly string[]): string[] {
  const left = ranges(a);
  const right = ranges(b);
  const both: Range[] = [];
  for (const x of right)
    for (const y of left)
      if (contains(y, x)) both.push(x);
      else if (contains(x, y)) both.push(y);
  return outermost(both).map((r) => r.entry);
}

/** The entries of `override` that allow an address `floor` does not (whole or in part). */
export function entriesOutside(floor: readonly string[], override: readonly string[]): string[] {
  const allowed = ranges(floor);
  return override.filter((entry) => {
    const range = rangeOf(entry);
    if (!range) return true;
    if (allowed.some((f) => contains(f, range))) return false;
    // Several narrower floor ranges may still cover the whole entry between them (they are disjoint once nested ones go).
    const inside = outermost(allowed.filter((f) => contains(range, f)));
    const covered = inside.reduce((sum, f) => sum + (1n << BigInt(128 - f.bits)), 0n);
    return covered !== 1n << BigInt(128 - range.bits);
  });
}

/** `override` narrowed by `floor`: an address passes only when both allow it (null = any address). */
export function narrowAllowlist(floor: IpAllowlist | null, override: IpAllowlist | null): IpAllowlist | null {
  if (!floor) return override;
  if (!override) return floor;
  return {
    entries: intersectEntries(floor.entries, override.entries),
    allows: (ip) => floor.allows(ip) && override.allows(ip),
  };
}
