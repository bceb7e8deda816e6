import type { Engine, Executor } from '../db/database.ts';
import { withConsoleTables, type AuditRow } from '../admin/console.tables.ts';
import { toDbTime } from '../shared/time.ts';
import { isUniqueViolation } from '../system/system-config.repository.ts';

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
  return withConsoleTables(db)
    .selectFrom('audit_log')
    .selectAll()
    .where('target', 'in', [...keys])
    .where('action', '=', SETTINGS_AUDIT_ACTION)
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(limit)
    .execute();
}

const RETRIED = new Set(['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT', 'SQLITE_BUSY']);

/**
 * Two first writes of one key race on the insert (unique key, a MySQL gap-lock deadlock, or SQLite refusing
 * to upgrade a read transaction of another process): run the whole transaction again.
 */
export async function withWriteRetry<T>(work: () => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (err) {
      const code = (err as { code?: string } | null)?.code;
      if (attempt >= attempts || !(isUniqueViolation(err) || (code && RETRIED.has(code)))) throw err;
      await new Promise((resolve) => setTimeout(resolve, 5 * attempt + Math.random() * 10));
    }
  }
}
