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

/** Kinds of flagged entries shown in the inbox. */
export type FlaggedKind =
  | 'unknown_order'
  | 'amount_mismatch'
  | 'double_payment'
  | 'late_payment'
  | 'unknown_refund'
  | 'refund_amount_mismatch'
  | 'refund_contradiction'
  | 'other';

/**
 * The inbox kind of a flagged entry, from its verdict and reported status: an `applied` flagged entry is a late
 * payment; with a status `refund_*` the entry is about a refund (invalid_state: the gateway contradicts a settled one).
 */
export function flaggedKind(verdict: string, status: string | null = null): FlaggedKind {
  const refund = status?.startsWith('refund_') === true;
  switch (verdict) {
    case 'unknown_order':
    case 'unknown_refund':
      return verdict;
    case 'amount_mismatch':
      return refund ? 'refund_amount_mismatch' : verdict;
    case 'invalid_state':
      return refund ? 'refund_contradiction' : 'double_payment';
    case 'applied':
      return 'late_payment';
    default:
      return 'other';
  }
}
