import { randomInt } from 'node:crypto';

/** `20261125141803123` + 8 random digits: unique in practice, sortable by creation time, 25 characters. */
export function generateOrderNo(now: Date): string {
  const stamp = now.toISOString().replace(/\D/g, '').slice(0, 17);
  return stamp + String(randomInt(0, 100_000_000)).padStart(8, '0');
}
