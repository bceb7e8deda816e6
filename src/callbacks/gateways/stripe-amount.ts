/**
 * Stripe's API writes amounts in the currency's smallest unit as Stripe defines it, which is not always
 * ISO 4217's: these are zero-decimal for Stripe (MGA has 2 decimals in ISO), and ISK is two-decimal for
 * Stripe (100 = 1 króna) though ISO gives it none. The amount is therefore handed on as a decimal in
 * Stripe's exponent, and the service converts it to the order currency's minor units exactly.
 */
const STRIPE_ZERO_DECIMAL = new Set('BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF'.split(' '));
const STRIPE_THREE_DECIMAL = new Set('BHD JOD KWD OMR TND'.split(' '));

/** Decimal places of Stripe's smallest unit for an upper-case currency code. */
export function stripeExponent(currency: string): number {
  return STRIPE_ZERO_DECIMAL.has(currency) ? 0 : STRIPE_THREE_DECIMAL.has(currency) ? 3 : 2;
}

/** Stripe's smallest-unit integer as a decimal in Stripe's exponent for that currency. */
export function stripeAmountDecimal(amount: number, currency: string): string {
  const exponent = stripeExponent(currency);
  const digits = String(amount).padStart(exponent + 1, '0');
  return exponent === 0 ? digits : `${digits.slice(0, -exponent)}.${digits.slice(-exponent)}`;
}
