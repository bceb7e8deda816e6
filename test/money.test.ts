import { describe, expect, it } from 'vitest';
import { formatAmount, MAX_MINOR_UNITS, parseAmount } from '../src/shared/money.ts';
import { currencyExponent } from '../src/shared/currencies.ts';

describe('parseAmount', () => {
  it.each([
    ['12.34', 'CNY', 1234],
    ['12.3', 'CNY', 1230],
    ['12', 'USD', 1200],
    ['0.01', 'EUR', 1],
    ['12.340', 'CNY', 1234],
    ['500', 'JPY', 500],
    ['500.0', 'JPY', 500],
    ['1.234', 'KWD', 1234],
    ['0.001', 'BHD', 1],
    ['19.99', 'USD', 1999],
    ['0.29', 'USD', 29],
    ['1.005', 'KWD', 1005],
  ])('%s %s → %d minor units', (text, currency, minor) => {
    expect(parseAmount(text, currency)).toEqual({ ok: true, minor });
  });

  it.each([
    ['0', 'CNY', 'greater than zero'],
    ['0.00', 'CNY', 'greater than zero'],
    ['-1', 'CNY', 'plain positive decimal'],
    ['1e3', 'CNY', 'plain positive decimal'],
    ['1.234', 'CNY', 'at most 2 decimal places'],
    ['1.5', 'JPY', 'at most 0 decimal places'],
    ['1.0001', 'KWD', 'at most 3'],
    ['12,34', 'CNY', 'plain positive decimal'],
    [' 12.34', 'CNY', 'plain positive decimal'],
    ['.5', 'CNY', 'plain positive decimal'],
    ['5.', 'CNY', 'plain positive decimal'],
    ['0x10', 'CNY', 'plain positive decimal'],
    ['Infinity', 'CNY', 'plain positive decimal'],
    ['NaN', 'CNY', 'plain positive decimal'],
    ['', 'CNY', 'plain positive decimal'],
    ['10000000000000', 'CNY', 'too large'],
    ['1.00', 'XXX', 'unknown currency'],
  ])('%j %s is refused (%s)', (text, currency, message) => {
    const result = parseAmount(text, currency);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.message).toContain(message);
  });

  it('accepts the largest storable amount exactly and nothing above it', () => {
    expect(parseAmount('9999999999999.99', 'CNY')).toEqual({ ok: true, minor: MAX_MINOR_UNITS });
    expect(parseAmount('999999999999999', 'JPY')).toEqual({ ok: true, minor: MAX_MINOR_UNITS });
    expect(parseAmount('1000000000000000', 'JPY').ok).toBe(false);
  });
});

describe('formatAmount', () => {
  it.each([
    [1234, 'CNY', '12.34'],
    [1, 'CNY', '0.01'],
    [100, 'USD', '1.00'],
    [500, 'JPY', '500'],
    [1, 'KWD', '0.001'],
    [MAX_MINOR_UNITS, 'CNY', '9999999999999.99'],
  ])('%d %s → %s', (minor, currency, text) => {
    expect(formatAmount(minor, currency)).toBe(text);
  });

  it('round-trips every minor amount of a range exactly (no float drift)', () => {
    for (let minor = 1; minor <= 10_000; minor++) {
      const text = formatAmount(minor, 'USD');
      expect(parseAmount(text, 'USD')).toEqual({ ok: true, minor });
    }
  });
});

describe('currency table', () => {
  it('knows the ISO 4217 exponents', () => {
    expect(currencyExponent('CNY')).toBe(2);
    expect(currencyExponent('JPY')).toBe(0);
    expect(currencyExponent('KRW')).toBe(0);
    expect(currencyExponent('KWD')).toBe(3);
    expect(currencyExponent('BHD')).toBe(3);
    expect(currencyExponent('CLF')).toBe(4);
    expect(currencyExponent('ABC')).toBeUndefined();
    expect(currencyExponent('cny')).toBeUndefined();
  });
});
