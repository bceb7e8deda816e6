import type { Executor } from '../db/database.ts';
import type { AuditRow } from '../audit/audit.repository.ts';

export const SETTINGS_AUDIT_ACTION = 'settings.update';

/** The latest settings changes, newest first (index audit_log_target_idx: one range per key). */
export function settingsHistory(db: Executor, keys: readonly string[], limit = 50): Promise<AuditRow[]> {
  return db
    .selectFrom('audit_log')
    .selectAll()
    .where('target', 'in', [...keys])
    .where('action', '=', SETTINGS_AUDIT_ACTION)
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(limit)
    .execute();
}
