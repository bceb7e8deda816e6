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

/** Parses `2026-11-25`, `2026-11-25T10:00:00Z` or unix seconds; `endOfDay` widens a bare date to its last millisecond. */
export function parseTimeParam(value: string, endOfDay = false): Date | null {
  if (/^\d{1,12}$/.test(value)) return new Date(Number(value) * 1000);
  if (!/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(value)) return null;
  const bareDate = value.length === 10;
  // A time without a zone designator is UTC, as everything else in the API (never the server's zone).
  const zoned = bareDate ? `${value}T00:00:00Z` : /(Z|[+-]\d{2}:?\d{2})$/.test(value) ? value : `${value}Z`;
  const date = new Date(zoned.replace(' ', 'T'));
  if (Number.isNaN(date.getTime())) return null;
  return bareDate && endOfDay ? new Date(date.getTime() + 86_400_000 - 1) : date;
}
