import type { Executor } from '../db/database.ts';
import { isUniqueViolation } from '../db/db-errors.ts';
import { toDbTime } from '../shared/time.ts';

/** Kept here for the callers that import it from this module; the policy is db-errors.ts's. */
export { isUniqueViolation };

export async function getConfigValues(db: Executor, keys: readonly string[]): Promise<Map<string, string>> {
  if (keys.length === 0) return new Map();
  const rows = await db.selectFrom('system_config').select(['config_key', 'config_value']).where('config_key', 'in', keys).execute();
  return new Map(rows.map((r) => [r.config_key, r.config_value]));
}

/** Inserts the value unless the key exists; returns false when another process got there first. */
export async function insertConfigValue(db: Executor, key: string, value: string, description: string, now: Date): Promise<boolean> {
  const existing = await getConfigValues(db, [key]);
  if (existing.has(key)) return false;
  try {
    await db
      .insertInto('system_config')
      .values({ config_key: key, config_value: value, description, created_at: toDbTime(now), updated_at: toDbTime(now) })
      .execute();
    return true;
  } catch (err) {
    if (isUniqueViolation(err)) return false;
    throw err;
  }
}

/** Removes the keys; returns how many rows went. */
export async function deleteConfigValues(db: Executor, keys: readonly string[]): Promise<number> {
  if (keys.length === 0) return 0;
  const result = await db.deleteFrom('system_config').where('config_key', 'in', keys).executeTakeFirst();
  return Number(result.numDeletedRows);
}
