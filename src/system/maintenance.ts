import { purgeExpiredNonces } from '../callbacks/nonce.repository.ts';
import type { Database } from '../db/database.ts';
import type { Logger } from '../shared/logger.ts';
import type { Clock } from '../shared/time.ts';

/** Periodic housekeeping (expired replay nonces); failures are logged and retried next round. */
export function startMaintenance(db: Database, clock: Clock, logger: Logger, intervalMs = 10 * 60_000): () => void {
  const run = async () => {
    try {
      const purged = await purgeExpiredNonces(db.kysely, clock());
      if (purged > 0) logger.info({ purged }, 'expired replay nonces purged');
    } catch (err) {
      logger.warn({ err }, 'maintenance failed; will retry');
    }
  };
  const timer = setInterval(() => void run(), intervalMs);
  timer.unref();
  void run();
  return () => clearInterval(timer);
}
