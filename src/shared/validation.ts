import type { z } from 'zod';
import { ValidationError } from './errors.ts';

/** Parses `input` with `schema` or throws a 400 `validation_failed` listing every field problem. */
export function parseOrThrow<T extends z.ZodType>(schema: T, input: unknown, what = 'request'): z.infer<T> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const errors = result.error.issues.map((issue) => ({
    path: issue.path.map(String).join('.') || '(root)',
    message: issue.message,
  }));
  throw new ValidationError(`Invalid ${what}: ${errors.map((e) => `${e.path} ${e.message}`).join('; ')}`, errors);
}

/**
 * The instants a time parameter may name: 1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z. Beyond them
 * the storage form (toDbTime) gets a signed six-digit year, which sorts before every stored time.
 */
export const MAX_TIME_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
export const TIME_PARAM_RULE =
  'must be ISO-8601 (2026-11-25 or 2026-11-25T10:00:00Z) or unix seconds, from 1970-01-01 to 9999-12-31 (unix seconds 0 to 253402300799)';

/** True when year-month-day is a real calendar date (the Date parser rolls 2026-02-31 over to March 3). */
function isCalendarDate(value: string): boolean {
  const [y, m, d] = value.slice(0, 10).split('-').map(Number) as [number, number, number];
  const probe = new Date(Date.UTC(2000, m - 1, d));
  probe.setUTCFullYear(y);
  return probe.getUTCFullYear() === y && probe.getUTCMonth() === m - 1 && probe.getUTCDate() === d;
}

/**
 * Parses `2026-11-25`, `2026-11-25T10:00:00Z` or unix seconds, within 1970-01-01 to 9999-12-31 UTC (else null);
 * `endOfDay` widens a bare date to its last millisecond.
 */
export function parseTimeParam(value: string, endOfDay = false): Date | null {
  const date = parseTime(value, endOfDay);
  return date && date.getTime() >= 0 && date.getTime() <= MAX_TIME_MS ? date : null;
}

function parseTime(value: string, endOfDay: boolean): Date | null {
  if (/^\d{1,12}$/.test(value)) return new Date(Number(value) * 1000);
  if (!/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(value) || !isCalendarDate(value)) return null;
  const bareDate = value.length === 10;
  // A time without a zone designator is UTC, as everything else in the API (never the server's zone).
  const zoned = bareDate ? `${value}T00:00:00Z` : /(Z|[+-]\d{2}:?\d{2})$/.test(value) ? value : `${value}Z`;
  const date = new Date(zoned.replace(' ', 'T'));
  if (Number.isNaN(date.getTime())) return null;
  return bareDate && endOfDay ? new Date(date.getTime() + 86_400_000 - 1) : date;
}
