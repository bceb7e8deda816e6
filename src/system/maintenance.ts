import { purgeExpiredNonces } from '../callbacks/nonce.repository.ts';
import type { Database } from '../db/database.ts';
import type { Logger } from '../shared/logger.ts';
import type { Clock } from '../shared/time.ts';
import { purgeDeliveryAttempts, purgePaymentLogs } from './retention.repository.ts';

export interface MaintenanceOptions {
  /** RETENTION_DAYS: payment logs and delivery attempts older than this are purged; null keeps them. */
  retentionDays: number | null;
  intervalMs?: number;
}

/** One housekeeping round: expired replay nonces always, old logs and attempts when retention is set. */
export async function runMaintenance(db: Database, now: Date, retentionDays: number | null) {
  const nonces = await purgeExpiredNonces(db.kysely, now);
  if (retentionDays === null) return { nonces, paymentLogs: 0, attempts: 0 };
  const before = new Date(now.getTime() - retentionDays * 86_400_000);
  const paymentLogs = await purgePaymentLogs(db.kysely, before);
  const attempts = await purgeDeliveryAttempts(db.kysely, before);
  return { nonces, paymentLogs, attempts };
}

/** Periodic housekeeping; failures are logged and retried next round. */
export function startMaintenance(db: Database, clock: Clock, logger: Logger, options: MaintenanceOptions): () => void {
  const run = async () => {
    try {
      const purged = await runMaintenance(db, clock(), options.retentionDays);
      if (purged.nonces + purged.paymentLogs + purged.attempts > 0) logger.info({ purged }, 'maintenance purged old rows');
    } catch (err) {
      logger.warn({ err }, 'maintenance failed; will retry');
    }
  };
  const timer = setInterval(() => void run(), options.intervalMs ?? 10 * 60_000);
  timer.unref();
  void run();
  return () => clearInterval(timer);
}
