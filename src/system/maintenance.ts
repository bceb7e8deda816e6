import { purgeExpiredNonces } from '../callbacks/nonce.repository.ts';
import type { Database } from '../db/database.ts';
import type { Logger } from '../shared/logger.ts';
import type { Clock } from '../shared/time.ts';
import { purgeDeliveryAttempts, purgePaymentLogs, purgeReconcileAttempts } from './retention.repository.ts';

export interface MaintenanceOptions {
  /** RETENTION_DAYS: payment logs and delivery attempts older than this are purged; null keeps them. */
  retentionDays: number | null;
  intervalMs?: number;
}

/** One housekeeping round: expired replay nonces always, old logs and attempts when retention is set. */
export async function runMaintenance(db: Database, now: Date, retentionDays: number | null) {
  const nonces = await purgeExpiredNonces(db.kysely, now);
  if (retentionDays === null) return { nonces, paymentLogs: 0, attempts: 0, looks: 0 };
  const before = new Date(now.getTime() - retentionDays * 86_400_000);
  const paymentLogs = await purgePaymentLogs(db.kysely, before);
  const attempts = await purgeDeliveryAttempts(db.kysely, before);
  const looks = await purgeReconcileAttempts(db.kysely, before);
  return { nonces, paymentLogs, attempts, looks };
}

/**
 * Stops the rounds; resolves true once a round in flight has finished (so it never runs into a closed pool),
 * false when it was still running after `waitMs`.
 */
export type StopMaintenance = (waitMs?: number) => Promise<boolean>;

/** Periodic housekeeping; failures are logged and retried next round. */
export function startMaintenance(db: Database, clock: Clock, logger: Logger, options: MaintenanceOptions): StopMaintenance {
  let current: Promise<void> | null = null;
  let stopped = false;
  const run = () => {
    if (stopped || current) return;
    current = (async () => {
      try {
        const purged = await runMaintenance(db, clock(), options.retentionDays);
        if (purged.nonces + purged.paymentLogs + purged.attempts + purged.looks > 0) logger.info({ purged }, 'maintenance purged old rows');
      } catch (err) {
        logger.warn({ err }, 'maintenance failed; will retry');
      } finally {
        current = null;
      }
    })();
  };
  const timer = setInterval(run, options.intervalMs ?? 10 * 60_000);
  timer.unref();
  run();
  return async (waitMs = Number.POSITIVE_INFINITY) => {
    stopped = true;
    clearInterval(timer);
    if (!current) return true;
    let timeout: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<false>((resolve) => (timeout = setTimeout(() => resolve(false), Math.min(waitMs, 2 ** 31 - 1))));
    const finished = await Promise.race([current.then(() => true as const), gaveUp]);
    clearTimeout(timeout);
    return finished;
  };
}
