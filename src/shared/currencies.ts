/** ISO 4217 minor-unit exponents of the active currencies (funds and metals excluded). */
const ZERO_DECIMALS = 'BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF';
const THREE_DECIMALS = 'BHD IQD JOD KWD LYD OMR TND';
const FOUR_DECIMALS = 'CLF UYW';
const TWO_DECIMALS = `
  AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP BYN BZD CAD
  CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD
  HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD
  MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON
  RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD
  TZS UAH USD UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG`;

const EXPONENTS: ReadonlyMap<string, number> = new Map([
  ...ZERO_DECIMALS.split(/\s+/).map((c) => [c, 0] as const),
  ...TWO_DECIMALS.trim()
    .split(/\s+/)
    .map((c) => [c, 2] as const),
  ...THREE_DECIMALS.split(/\s+/).map((c) => [c, 3] as const),
  ...FOUR_DECIMALS.split(/\s+/).map((c) => [c, 4] as const),
]);

/** Minor-unit exponent of an ISO 4217 code, or undefined when the code is unknown. */
export function currencyExponent(code: string): number | undefined {
  return EXPONENTS.get(code);
}

export function isKnownCurrency(code: string): boolean {
  return EXPONENTS.has(code);
}
