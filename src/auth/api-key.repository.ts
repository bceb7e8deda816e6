import type { Executor } from '../db/database.ts';
import { toDbTime } from '../shared/time.ts';

export async function insertApiKey(db: Executor, row: { name: string; keyPrefix: string; keyHash: string; now: Date }): Promise<number> {
  const result = await db
    .insertInto('api_keys')
    .values({ name: row.name, key_prefix: row.keyPrefix, key_hash: row.keyHash, created_at: toDbTime(row.now) })
    .executeTakeFirstOrThrow();
  return Number(result.insertId);
}

export function findActiveKeyByHash(db: Executor, keyHash: string) {
  return db.selectFrom('api_keys').select(['id', 'name', 'last_used_at']).where('key_hash', '=', keyHash).where('revoked_at', 'is', null).executeTakeFirst();
}

export function listApiKeys(db: Executor) {
  return db.selectFrom('api_keys').select(['id', 'name', 'key_prefix', 'created_at', 'last_used_at', 'revoked_at']).orderBy('id').execute();
}

export async function countActiveKeys(db: Executor): Promise<number> {
  const row = await db
    .selectFrom('api_keys')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

/** Returns whether a still-active key was revoked. */
export async function revokeApiKey(db: Executor, id: number, now: Date): Promise<boolean> {
  const result = await db
    .updateTable('api_keys')
    .set({ revoked_at: toDbTime(now) })
    .where('id', '=', id)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

export async function touchApiKey(db: Executor, id: number, now: Date): Promise<void> {
  await db
    .updateTable('api_keys')
    .set({ last_used_at: toDbTime(now) })
    .where('id', '=', id)
    .execute();
}
