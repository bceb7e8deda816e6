/** When the reconciler looks at an order next, after a look that left it pending. */
export interface NextCheck {
  at: Date | null;
  step: number;
}

/**
 * Each step of RECONCILE_SCHEDULE once, never later than the expiry; once the schedule is spent, at the
 * expiry (never again for an order without one). After an expiry that could not be settled (the gateway
 * did not answer), again after the schedule's last delay, until it is.
 */
export function nextCheck(step: number, scheduleMs: readonly number[], now: Date, expiresAt: Date | null): NextCheck {
  const expired = expiresAt !== null && expiresAt.getTime() <= now.getTime();
  if (expired) return { at: new Date(now.getTime() + scheduleMs[Math.min(step, scheduleMs.length - 1)]!), step: step + 1 };
  if (step >= scheduleMs.length) return { at: expiresAt, step };
  const at = new Date(now.getTime() + scheduleMs[step]!);
  return { at: expiresAt && expiresAt.getTime() < at.getTime() ? expiresAt : at, step: step + 1 };
}
