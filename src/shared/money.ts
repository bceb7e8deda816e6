import { currencyExponent } from './currencies.ts';

/** Largest amount we store: keeps minor units exact in a JS number and inside BIGINT. */
export const MAX_MINOR_UNITS = 999_999_999_999_999;

export type ParseAmountResult = { ok: true; minor: number } | { ok: false; message: string };

/**
 * Parses a plain decimal string ("12.34", "5", "0.5") into integer minor units of `currency`,
 * exactly: no floats, no exponents, no more decimals than the currency has.
 */
export function parseAmount(text: string, currency: string): ParseAmountResult {
  const exponent = currencyExponent(currency);
  if (exponent === undefined) return { ok: false, message: `unknown currency ${currency}` };
  const match = /^(\d{1,18})(?:\.(\d{1,18}))?$/.exec(text);
  if (!match) return { ok: false, message: 'must be a plain positive decimal such as 12.34' };
  const whole = match[1]!;
  const fraction = match[2] ?? '';
  if (fraction.replace(/0+$/, '').length > exponent) {
    return { ok: false, message: `${currency} allows at most ${exponent} decimal place${exponent === 1 ? '' : 's'}` };
  }
  const minor = BigInt(whole) * 10n ** BigInt(exponent) + BigInt((fraction + '0'.repeat(exponent)).slice(0, exponent) || '0');
  if (minor <= 0n) return { ok: false, message: 'must be greater than zero' };
  if (minor > BigInt(MAX_MINOR_UNITS)) return { ok: false, message: 'is too large' };
  return { ok: true, minor: Number(minor) };
}

/** Formats integer minor units as the currency's exact decimal string (1234, CNY → "12.34"). */
export function formatAmount(minor: number, currency: string): string {
  const exponent = currencyExponent(currency) ?? 2;
  const digits = BigInt(minor)
    .toString()
    .padStart(exponent + 1, '0');
  return exponent === 0 ? digits : `${digits.slice(0, -exponent)}.${digits.slice(-exponent)}`;
}
