import type { Logger } from '../shared/logger.ts';

const QUIET_MS = 60_000;

/**
 * express-rate-limit's logger: its store errors (Redis out of reach, the limit failing open) go to the
 * service's log as one warning line a minute per limiter, instead of a stack trace on stderr per request.
 */
export function rateLimitLogger(logger: Logger | undefined, limiter: string) {
  let lastAt = -Infinity;
  let suppressed = 0;
  const log = (...args: unknown[]) => {
    const now = Date.now();
    if (now - lastAt < QUIET_MS) {
      suppressed++;
      return;
    }
    const err = args.find((a): a is Error => a instanceof Error);
    const text = args.filter((a): a is string => typeof a === 'string').join(' ');
    logger?.warn({ limiter, err: err?.message, suppressed }, text || 'rate limiter problem');
    lastAt = now;
    suppressed = 0;
  };
  return { warn: log, error: log };
}
