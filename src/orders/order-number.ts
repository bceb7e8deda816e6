import { randomInt } from 'node:crypto';

/** A merchant order number: the one rule every entry point checks, API, gateways and CLI alike. */
export const ORDER_NO_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
/** The rule in words, for the validation messages that name the field. */
export const ORDER_NO_RULE = 'must be 1-64 characters of A-Z, a-z, 0-9, _ or -';

export function isOrderNo(value: unknown): value is string {
  return typeof value === 'string' && ORDER_NO_PATTERN.test(value);
}

/** `20261125141803123` + 8 random digits: unique in practice, sortable by creation time, 25 characters. */
export function generateOrderNo(now: Date): string {
  const stamp = now.toISOString().replace(/\D/g, '').slice(0, 17);
  return stamp + String(randomInt(0, 100_000_000)).padStart(8, '0');
}
