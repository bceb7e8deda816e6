import { sql, type Selectable } from 'kysely';
import type { Executor } from '../db/database.ts';
import type { OperatorsTable } from '../db/schema.ts';
import { toDbTime } from '../shared/time.ts';

export type OperatorRow = Selectable<OperatorsTable>;

export function findOperatorById(db: Executor, id: number): Promise<OperatorRow | undefined> {
  return db.selectFrom('operators').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Exact match: usernames are compared byte for byte on both engines (utf8mb4_bin on MySQL). */
export function findOperatorByUsername(db: Executor, username: string): Promise<OperatorRow | undefined> {
  return db.selectFrom('operators').selectAll().where('username', '=', username).executeTakeFirst();
}

/** Ignoring case: a new account may not differ from an existing one only in case (admin, Admin). */
export function findOperatorByUsernameAnyCase(db: Executor, username: string): Promise<{ username: string } | undefined> {
  return db
    .selectFrom('operators')
    .select('username')
    .where(sql<string>`lower(username)`, '=', username.toLowerCase())
    .executeTakeFirst();
}

export function listOperators(db: Executor): Promise<OperatorRow[]> {
  return db.selectFrom('operators').selectAll().orderBy('username').execute();
}

export async function countOperators(db: Executor): Promise<number> {
  const row = await db
    .selectFrom('operators')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

export async function insertOperator(
  db: Executor,
  row: { username: string; role: string; passwordHash: string; mustChangePassword: boolean; now: Date },
): Promise<number> {
  const now = toDbTime(row.now);
  const result = await db
    .insertInto('operators')
    .values({
      username: row.username,
      role: row.role,
      password_hash: row.passwordHash,
      must_change_password: row.mustChangePassword ? 1 : 0,
      created_at: now,
      updated_at: now,
    })
    .executeTakeFirstOrThrow();
  return Number(result.insertId);
}

/**
 * Counts a failed sign-in; the failure that reaches `limit` locks the account until `lockedUntil` and starts the
 * count again. Returns whether this failure locked it.
 */
export async function recordLoginFailure(db: Executor, id: number, limit: number, lockedUntil: Date, now: Date): Promise<boolean> {
  await db
    .updateTable('operators')
    .set((eb) => ({ failed_logins: eb('failed_logins', '+', 1) }))
    .where('id', '=', id)
    .execute();
  const locked = await db
    .updateTable('operators')
    .set({ failed_logins: 0, locked_until: toDbTime(lockedUntil), updated_at: toDbTime(now) })
    .where('id', '=', id)
    .where('failed_logins', '>=', limit)
    .executeTakeFirst();
  return Number(locked.numUpdatedRows) > 0;
}

/** A successful sign-in: the failure count starts again and the time is kept for the user list. */
export async function recordLoginSuccess(db: Executor, id: number, now: Date): Promise<void> {
  await db
    .updateTable('operators')
    .set({ failed_logins: 0, locked_until: null, last_login_at: toDbTime(now) })
    .where('id', '=', id)
    .execute();
}

/** A new password hash; `endSessions` bumps the session epoch. Returns the new epoch, or null when there is no such account. */
export async function setPassword(
  db: Executor,
  id: number,
  change: { passwordHash: string; mustChangePassword: boolean; endSessions: boolean; now: Date },
): Promise<number | null> {
  await db
    .updateTable('operators')
    .set((eb) => ({
      password_hash: change.passwordHash,
      must_change_password: change.mustChangePassword ? 1 : 0,
      failed_logins: 0,
      locked_until: null,
      session_epoch: change.endSessions ? eb('session_epoch', '+', 1) : eb.ref('session_epoch'),
      updated_at: toDbTime(change.now),
    }))
    .where('id', '=', id)
    .execute();
  return (await findOperatorById(db, id))?.session_epoch ?? null;
}

/** Ends every session of the account (their cookies name the old epoch). Returns the new epoch, or null when there is no such account. */
export async function bumpSessionEpoch(db: Executor, id: number, now: Date): Promise<number | null> {
  await db
    .updateTable('operators')
    .set((eb) => ({ session_epoch: eb('session_epoch', '+', 1), updated_at: toDbTime(now) }))
    .where('id', '=', id)
    .execute();
  return (await findOperatorById(db, id))?.session_epoch ?? null;
}

/** Disabling also ends the account's sessions. Returns whether the account was enabled before. */
export async function setDisabled(db: Executor, id: number, disabled: boolean, now: Date): Promise<boolean> {
  const result = await db
    .updateTable('operators')
    .set((eb) => ({
      disabled: disabled ? 1 : 0,
      session_epoch: disabled ? eb('session_epoch', '+', 1) : eb.ref('session_epoch'),
      updated_at: toDbTime(now),
    }))
    .where('id', '=', id)
    .where('disabled', '=', disabled ? 0 : 1)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

export async function setRole(db: Executor, id: number, role: string, now: Date): Promise<void> {
  await db
    .updateTable('operators')
    .set({ role, updated_at: toDbTime(now) })
    .where('id', '=', id)
    .execute();
}
