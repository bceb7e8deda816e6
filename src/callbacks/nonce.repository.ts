import type { Executor } from '../db/database.ts';
import { GROUP_LIST_ROWS, listQueryTemplate } from '../db/fast-path/query-template.ts';
import { toDbTime } from '../shared/time.ts';

interface NonceRow {
  scope: string;
  nonce: string;
  expiresAt: string;
}

// On every callback: compiled once per database and row count, then only the values change.
const insertNoncesTemplate = listQueryTemplate(
  {},
  { scope: true, nonce: true, expiresAt: true },
  GROUP_LIST_ROWS,
  (db, _v: object, rows: readonly NonceRow[]) =>
    db.insertInto('replay_nonces').values(rows.map((r) => ({ scope: r.scope, nonce: r.nonce, expires_at: r.expiresAt }))),
);

/** The insert recording a nonce, unexecuted (to send with other statements); fails as a unique violation when seen before. */
export function nonceInsert(db: Executor, scope: string, nonce: string, expiresAt: Date) {
  return noncesInsert(db, [{ scope, nonce, expiresAt }]);
}

/** Several nonces in one unexecuted insert; the whole statement fails as a unique violation if any was seen before. */
export function noncesInsert(db: Executor, nonces: readonly { scope: string; nonce: string; expiresAt: Date }[]) {
  return insertNoncesTemplate.bind(
    db,
    {},
    nonces.map((n) => ({ scope: n.scope, nonce: n.nonce, expiresAt: toDbTime(n.expiresAt) })),
  );
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
