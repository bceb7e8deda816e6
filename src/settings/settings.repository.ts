import type { Engine, Executor } from '../db/database.ts';
import type { AuditRow } from '../audit/audit.repository.ts';
import { toDbTime } from '../shared/time.ts';

export const SETTINGS_AUDIT_ACTION = 'settings.update';

export interface ConfigRow {
  config_key: string;
  config_value: string;
  description: string | null;
  created_at: string;
  updated_at: string;
}

/** Every system_config row, by key (a small table: generated secrets and runtime settings). */
export function listConfigRows(db: Executor, limit = 500): Promise<ConfigRow[]> {
  return db.selectFrom('system_config').select(['config_key', 'config_value', 'description', 'created_at', 'updated_at']).orderBy('config_key').limit(limit).execute();
}

/** The stored value of `key`, row-locked on MySQL so concurrent edits of one setting queue up. */
export async function lockConfigValue(db: Executor, engine: Engine, key: string): Promise<string | null> {
  const row = await db
    .selectFrom('system_config')
    .select('config_value')
    .where('config_key', '=', key)
    .$if(engine === 'mysql', (q) => q.forUpdate())
    .executeTakeFirst();
  return row?.config_value ?? null;
}

/** Writes `value` under `key` (updated when the row exists, else inserted); null deletes the row. */
export async function writeConfigValue(db: Executor, key: string, value: string | null, existed: boolean, description: string, now: Date): Promise<void> {
  if (value === null) {
    await db.deleteFrom('system_config').where('config_key', '=', key).execute();
  } else if (existed) {
    await db.updateTable('system_config').set({ config_value: value, updated_at: toDbTime(now) }).where('config_key', '=', key).execute();
  } else {
    await db.insertInto('system_config').values({ config_key: key, config_value: value, description, created_at: toDbTime(now), updated_at: toDbTime(now) }).execute();
  }
}

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
