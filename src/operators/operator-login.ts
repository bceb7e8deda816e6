import { recordAudit } from '../audit/audit.repository.ts';
import type { Database, Executor } from '../db/database.ts';
import type { Clock } from '../shared/time.ts';
import { dummyVerify, verifyPassword } from './password.ts';
import { findOperatorByUsername, recordLoginFailure, recordLoginSuccess } from './operator.repository.ts';
import { isUsername, LOCK_AFTER_FAILURES, LOCK_MS, toOperator, triedName, type Operator } from './operator.rules.ts';

/**
 * The password step of a sign-in. `wrong` is the one answer for an unknown username, a wrong password and a
 * disabled account, so the form never tells which names exist; `locked` while the account is locked.
 */
export type LoginCheck = { kind: 'ok'; operator: Operator } | { kind: 'wrong' } | { kind: 'locked'; until: Date };

export type FailureReason = 'unknown_user' | 'wrong_password' | 'disabled' | 'wrong_second_factor' | 'wrong_current_password';

/** Sign-in checks: each failure and each success is an audit row naming the username tried and the address. */
export function createOperatorLogin(deps: { db: Database; clock: Clock }) {
  const { db, clock } = deps;

  async function audit(trx: Executor, action: string, username: string, ip: string | null, details: unknown, now: Date) {
    await recordAudit(trx, { actor: username, action, target: `operator:${username}`, newValue: details, remoteIp: ip, now });
  }

  /** Counts a failure against an existing account (locking it at the limit) with its audit rows, in one transaction. */
  async function fail(operator: Operator, ip: string | null, reason: FailureReason): Promise<LoginCheck> {
    const now = clock();
    const until = new Date(now.getTime() + LOCK_MS);
    const locked = await db.kysely.transaction().execute(async (trx) => {
      const lockedNow = await recordLoginFailure(trx, operator.id, LOCK_AFTER_FAILURES, until, now);
      await audit(trx, 'login.failure', operator.username, ip, { reason }, now);
      if (lockedNow) await audit(trx, 'login.locked', operator.username, ip, { until: until.toISOString(), failures: LOCK_AFTER_FAILURES }, now);
      return lockedNow;
    });
    return locked ? { kind: 'locked', until } : { kind: 'wrong' };
  }

  /** Checks a username and password. Nothing is written on success: completeLogin does that once every step has passed. */
  async function authenticate(username: unknown, password: unknown, ip: string | null): Promise<LoginCheck> {
    const row = isUsername(username) ? await findOperatorByUsername(db.kysely, username) : undefined;
    const now = clock();
    if (!row) {
      await dummyVerify();
      await audit(db.kysely, 'login.failure', triedName(username), ip, { reason: 'unknown_user' }, now);
      return { kind: 'wrong' };
    }
    const operator = toOperator(row);
    if (operator.lockedUntil && operator.lockedUntil > now) {
      // The password is not even checked while locked: guessing goes on only after the lock.
      await dummyVerify();
      await audit(db.kysely, 'login.locked', operator.username, ip, { until: operator.lockedUntil.toISOString() }, now);
      return { kind: 'locked', until: operator.lockedUntil };
    }
    const right = await verifyPassword(password, row.password_hash);
    if (!right) return fail(operator, ip, 'wrong_password');
    if (operator.disabled) {
      await audit(db.kysely, 'login.failure', operator.username, ip, { reason: 'disabled' }, now);
      return { kind: 'wrong' };
    }
    return { kind: 'ok', operator };
  }

  /** A second step (TOTP) that failed counts like a wrong password: the same counter, the same lock. */
  const secondStepFailed = (operator: Operator, ip: string | null) => fail(operator, ip, 'wrong_second_factor');

  /** Every step passed: the failure count starts again, the time is kept, and the success is audited. */
  async function completeLogin(operator: Operator, ip: string | null, method: 'password' | 'password+totp' = 'password'): Promise<void> {
    const now = clock();
    await db.kysely.transaction().execute(async (trx) => {
      await recordLoginSuccess(trx, operator.id, now);
      await audit(trx, 'login.success', operator.username, ip, { method, role: operator.role }, now);
    });
  }

  return { authenticate, secondStepFailed, recordFailure: fail, completeLogin };
}

export type OperatorLogin = ReturnType<typeof createOperatorLogin>;
