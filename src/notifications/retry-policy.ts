/** Longest Retry-After we honour; a merchant cannot park an event for longer than a day per attempt. */
const MAX_RETRY_AFTER_MS = 24 * 3600_000;

/** `Retry-After` as seconds or an HTTP date → milliseconds from now; null when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now: Date): number | null {
  if (!value) return null;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Math.min(Number(trimmed) * 1000, MAX_RETRY_AFTER_MS);
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return null;
  return Math.min(Math.max(0, date - now.getTime()), MAX_RETRY_AFTER_MS);
}

export type AttemptVerdict = { kind: 'delivered' } | { kind: 'abandoned'; reason: string } | { kind: 'failed'; reason: string; retryAfterMs?: number | null };

export type NextState =
  | { status: 'delivered' }
  | { status: 'abandoned'; reason: string }
  | { status: 'dead'; reason: string }
  | { status: 'pending'; nextAttemptAt: Date; scheduleStep: number; reason: string };

/**
 * After an attempt at schedule step `step`: delivered, abandoned (410, forbidden target), retried after the
 * step's delay (never sooner than Retry-After), or dead once the schedule is spent.
 */
export function nextState(verdict: AttemptVerdict, step: number, scheduleMs: readonly number[], now: Date): NextState {
  if (verdict.kind === 'delivered') return { status: 'delivered' };
  if (verdict.kind === 'abandoned') return { status: 'abandoned', reason: verdict.reason };
  const delay = scheduleMs[step];
  if (delay === undefined) return { status: 'dead', reason: `${verdict.reason}; retry schedule spent` };
  const wait = Math.max(delay, verdict.retryAfterMs ?? 0);
  return { status: 'pending', nextAttemptAt: new Date(now.getTime() + wait), scheduleStep: step + 1, reason: verdict.reason };
}
