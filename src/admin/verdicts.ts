import type { Verdict } from '../callbacks/gateways/gateway.ts';

/**
 * Every payment-log verdict, in chart order. The dashboard counts them with `verdict IN (…)` so the existing
 * (verdict, created_at) index covers the query; the check below fails to compile when a verdict is added
 * to the Verdict type but not here.
 */
export const VERDICTS = [
  'applied',
  'duplicate',
  'invalid_state',
  'amount_mismatch',
  'unknown_order',
  'unknown_refund',
  'replayed',
  'bad_signature',
  'forbidden',
  'malformed',
  'ignored',
] as const satisfies readonly Verdict[];

type Missing = Exclude<Verdict, (typeof VERDICTS)[number]>;
const _everyVerdictListed: [Missing] extends [never] ? true : Missing = true;

/** Kinds of flagged entries shown in the inbox, from the verdict (an `applied` flagged entry is a late payment). */
export function flaggedKind(verdict: string): 'unknown_order' | 'amount_mismatch' | 'double_payment' | 'late_payment' | 'other' {
  switch (verdict) {
    case 'unknown_order':
    case 'amount_mismatch':
      return verdict;
    case 'invalid_state':
      return 'double_payment';
    case 'applied':
      return 'late_payment';
    default:
      return 'other';
  }
}
