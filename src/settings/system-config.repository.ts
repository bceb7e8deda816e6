import type { Engine, Executor } from '../db/database.ts';
import { isUniqueViolation } from '../db/db-errors.ts';
import { toDbTime } from '../shared/time.ts';

/*
 * Every read and write of system_config: the runtime settings edited in the console, the development
 * secrets generated at start (`secret.*`), and what the doctor and `npm run secrets` look at.
 */

export interface ConfigRow {
  config_key: string;
  config_value: string;
  description: string | null;
  created_at: string;
  updated_at: string;
}

/** Every system_config row, by key (a small table: generated secrets and runtime settings). */
export function listConfigRows(db: Executor, limit = 500): Promise<ConfigRow[]> {
  return db
    .selectFrom('system_config')
    .select(['config_key', 'config_value', 'description', 'created_at', 'updated_at'])
    .orderBy('config_key')
    .limit(limit)
    .execute();
}

export async function getConfigValues(db: Executor, keys: readonly string[]): Promise<Map<string, string>> {
  if (keys.length === 0) return new Map();
  const rows = await db.selectFrom('system_config').select(['config_key', 'config_value']).where('config_key', 'in', keys).execute();
  return new Map(rows.map((r) => [r.config_key, r.config_value]));
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

function insertRow(db: Executor, key: string, value: string, description: string, now: Date) {
  return db
    .insertInto('system_config')
    .values({ config_key: key, config_value: value, description, created_at: toDbTime(now), updated_at: toDbTime(now) })
    .execute();
}

/** Inserts the value unless the key exists; returns false when another process got there first. */
export async function insertConfigValue(db: Executor, key: string, value: string, description: string, now: Date): Promise<boolean> {
  const existing = await getConfigValues(db, [key]);
  if (existing.has(key)) return false;
  try {
    await insertRow(db, key, value, description, now);
    return true;
  } catch (err) {
    if (isUniqueViolation(err)) return false;
    throw err;
  }
}

/** Writes `value` under `key` (updated when the row exists, else inserted); null deletes the row. */
export async function writeConfigValue(db: Executor, key: string, value: string | null, existed: boolean, description: string, now: Date): Promise<void> {
  if (value === null) await deleteConfigValues(db, [key]);
  else if (existed)
    await db
      .updateTable('system_config')
      .set({ config_value: value, updated_at: toDbTime(now) })
      .where('config_key', '=', key)
      .execute();
  else await insertRow(db, key, value, description, now);
}

/** Removes the keys; returns how many rows went. */
export async function deleteConfigValues(db: Executor, keys: readonly string[]): Promise<number> {
  if (keys.length === 0) return 0;
  const result = await db.deleteFrom('system_config').where('config_key', 'in', keys).executeTakeFirst();
  return Number(result.numDeletedRows);
}
