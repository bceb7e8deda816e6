import type { Executor } from '../db/database.ts';
import { queryTemplate } from '../db/query-template.ts';
import { toDbTime } from '../shared/time.ts';

// On every callback: compiled once per database, then only the values change.
const insertNonceTemplate = queryTemplate({ scope: true, nonce: true, expiresAt: true }, (db, v: { scope: string; nonce: string; expiresAt: string }) =>
  db.insertInto('replay_nonces').values({ scope: v.scope, nonce: v.nonce, expires_at: v.expiresAt }),
);

/** The insert recording a nonce, unexecuted (to send with other statements); fails as a unique violation when seen before. */
export function nonceInsert(db: Executor, scope: string, nonce: string, expiresAt: Date) {
  return insertNonceTemplate.bind(db, { scope, nonce, expiresAt: toDbTime(expiresAt) });
}

/** Records a nonce; throws the engine's unique violation when it was seen before (within its lifetime). */
export async function insertNonce(db: Executor, scope: string, nonce: string, expiresAt: Date): Promise<void> {
  await nonceInsert(db, scope, nonce, expiresAt).execute();
}

/** Drops nonces whose lifetime is over, so a long-running service keeps the table small. */
export async function purgeExpiredNonces(db: Executor, now: Date): Promise<number> {
  const result = await db.deleteFrom('replay_nonces').where('expires_at', '<', toDbTime(now)).executeTakeFirst();
  return Number(result.numDeletedRows);
}
