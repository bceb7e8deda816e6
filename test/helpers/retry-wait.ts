import type { AppConfig } from '../../src/config.ts';

/** Slack for an attempt, once due, to be claimed and reach the receiver on a busy machine. */
const ATTEMPT_SLACK_MS = 300;

/**
 * How long to watch a receiver to be sure no further delivery comes: past the longest delay of the retry schedule
 * in force, two polls of the loop and an attempt's slack. Any retry the loop scheduled would have arrived by then.
 */
export function pastRetryIntervalMs(notify: Pick<AppConfig['notify'], 'retryScheduleMs' | 'pollIntervalMs'>): number {
  return Math.max(0, ...notify.retryScheduleMs) + 2 * notify.pollIntervalMs + ATTEMPT_SLACK_MS;
}

/** Waits `pastRetryIntervalMs(notify)`. */
export const waitPastRetryInterval = (notify: Pick<AppConfig['notify'], 'retryScheduleMs' | 'pollIntervalMs'>) =>
  new Promise((resolve) => setTimeout(resolve, pastRetryIntervalMs(notify)));
