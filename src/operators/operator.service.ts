import { recordAudit } from '../audit/audit.repository.ts';
import type { Database, Executor } from '../db/database.ts';
import { isUniqueViolation } from '../db/db-errors.ts';
import { AppError, InvalidStateError, NotFoundError, ValidationError } from '../shared/errors.ts';
import type { Clock } from '../shared/time.ts';
import { createOperatorLogin } from './operator-login.ts';
import * as repo from './operator.repository.ts';
import { isRole, isUsername, toOperator, type Actor, type Operator, type Role } from './operator.rules.ts';
import { generatePassword, hashPassword, MAX_PASSWORD_CHARS, verifyPassword } from './password.ts';

export type { LoginCheck } from './operator-login.ts';

/** Why a chosen password is refused (length, common, a pattern), or null; the console's rules are injected by the caller. */
export type PasswordPolicy = (password: string) => string | null;

export type PasswordChange =
  | { kind: 'changed'; sessionEpoch: number }
  | { kind: 'wrong_current' }
  | { kind: 'same' }
  | { kind: 'weak'; reason: string }
  | { kind: 'locked'; until: Date };

/**
 * Console accounts: sign-in (operator-login.ts), creation with a one-time or a chosen password, reset, disable,
 * role changes, password changes and ending sessions. Every change is audited in its own transaction.
 */
export function createOperatorService(deps: { db: Database; clock: Clock; passwordPolicy?: PasswordPolicy }) {
  const { db, clock } = deps;
  const policy = deps.passwordPolicy ?? (() => null);
  const login = createOperatorLogin({ db, clock });

  const audit = (trx: Executor, actor: Actor, action: string, username: string, oldValue: unknown, newValue: unknown, now: Date) =>
    recordAudit(trx, { actor: actor.operator, action, target: `operator:${username}`, oldValue, newValue, remoteIp: actor.remoteIp ?? null, now });

  async function byUsername(username: string): Promise<Operator> {
    const row = isUsername(username) ? await repo.findOperatorByUsername(db.kysely, username) : undefined;
    if (!row) throw new NotFoundError(`No console user ${JSON.stringify(username)}`);
    return toOperator(row);
  }

  function checkChosen(password: string): void {
    if (password.length > MAX_PASSWORD_CHARS) throw new ValidationError(`The password must be at most ${MAX_PASSWORD_CHARS} characters`);
    const weak = policy(password);
    if (weak) throw new ValidationError(`The password ${weak}`);
  }

  /**
   * A new account. Without `password` a one-time password is generated (returned once, to be changed at first
   * sign-in); a chosen one (automation) is checked against the policy and is not one-time.
   */
  async function create(
    input: { username: string; role: Role; password?: string },
    actor: Actor,
  ): Promise<{ operator: Operator; password: string; oneTime: boolean }> {
    if (!isUsername(input.username)) throw new ValidationError('A username is 1-64 letters, digits and _ . @ -');
    if (!isRole(input.role)) throw new ValidationError('The role is viewer, operator or admin');
    const oneTime = input.password === undefined;
    if (input.password !== undefined) checkChosen(input.password);
    const password = input.password ?? generatePassword();
    const passwordHash = await hashPassword(password);
    const now = clock();
    try {
      const id = await db.kysely.transaction().execute(async (trx) => {
        const similar = await repo.findOperatorByUsernameAnyCase(trx, input.username);
        if (similar) throw new AppError('invalid_state', `A console user ${JSON.stringify(similar.username)} already exists`);
        const newId = await repo.insertOperator(trx, { username: input.username, role: input.role, passwordHash, mustChangePassword: oneTime, now });
        await audit(trx, actor, 'operator.create', input.username, null, { role: input.role, one_time_password: oneTime }, now);
        return newId;
      });
      return { operator: toOperator((await repo.findOperatorById(db.kysely, id))!), password, oneTime };
    } catch (err) {
      if (isUniqueViolation(err)) throw new InvalidStateError(`A console user ${JSON.stringify(input.username)} already exists`);
      throw err;
    }
  }

  /** A new one-time password (returned once); the account's sessions end and a lock is lifted. */
  async function resetPassword(username: string, actor: Actor): Promise<{ operator: Operator; password: string }> {
    const target = await byUsername(username);
    const password = generatePassword();
    const passwordHash = await hashPassword(password);
    const now = clock();
    await db.kysely.transaction().execute(async (trx) => {
      await repo.setPassword(trx, target.id, { passwordHash, mustChangePassword: true, endSessions: true, now });
      await audit(trx, actor, 'operator.reset_password', target.username, null, { one_time_password: true, sessions_ended: true }, now);
    });
    return { operator: await byUsername(username), password };
  }

  /** Disabling ends the account's sessions at once; returns false when it already had that state. */
  async function setDisabled(username: string, disabled: boolean, actor: Actor): Promise<boolean> {
    const target = await byUsername(username);
    const now = clock();
    return db.kysely.transaction().execute(async (trx) => {
      const changed = await repo.setDisabled(trx, target.id, disabled, now);
      if (changed) await audit(trx, actor, disabled ? 'operator.disable' : 'operator.enable', target.username, { disabled: !disabled }, { disabled }, now);
      return changed;
    });
  }

  async function changeRole(username: string, role: Role, actor: Actor): Promise<Operator> {
    if (!isRole(role)) throw new ValidationError('The role is viewer, operator or admin');
    const target = await byUsername(username);
    if (target.role !== role) {
      const now = clock();
      await db.kysely.transaction().execute(async (trx) => {
        await repo.setRole(trx, target.id, role, now);
        await audit(trx, actor, 'operator.role', target.username, { role: target.role }, { role }, now);
      });
    }
    return byUsername(username);
  }

  /**
   * The signed-in user's own change: the current password is needed (a wrong one counts as a failed sign-in), the new
   * one must pass the policy. The user's other sessions end; the caller re-issues this one with the new epoch.
   */
  async function changePassword(id: number, current: unknown, next: string, actor: Actor): Promise<PasswordChange> {
    const row = await repo.findOperatorById(db.kysely, id);
    if (!row) throw new NotFoundError('No such console user');
    const operator = toOperator(row);
    if (operator.lockedUntil && operator.lockedUntil > clock()) return { kind: 'locked', until: operator.lockedUntil };
    if (!(await verifyPassword(current, row.password_hash))) {
      const failed = await login.recordFailure(operator, actor.remoteIp ?? null, 'wrong_current_password');
      return failed.kind === 'locked' ? failed : { kind: 'wrong_current' };
    }
    if (next === current) return { kind: 'same' };
    const weak = next.length > MAX_PASSWORD_CHARS ? `must be at most ${MAX_PASSWORD_CHARS} characters` : policy(next);
    if (weak) return { kind: 'weak', reason: weak };
    const passwordHash = await hashPassword(next);
    const now = clock();
    const sessionEpoch = await db.kysely.transaction().execute(async (trx) => {
      const epoch = await repo.setPassword(trx, id, { passwordHash, mustChangePassword: false, endSessions: true, now });
      await audit(trx, actor, 'operator.password_change', operator.username, null, { other_sessions_ended: true }, now);
      return epoch!;
    });
    return { kind: 'changed', sessionEpoch };
  }

  /** Ends every session of the account; the caller re-issues the current one with the returned epoch. */
  async function endSessions(id: number, actor: Actor): Promise<number> {
    const now = clock();
    return db.kysely.transaction().execute(async (trx) => {
      const epoch = await repo.bumpSessionEpoch(trx, id, now);
      if (epoch === null) throw new NotFoundError('No such console user');
      const row = (await repo.findOperatorById(trx, id))!;
      await audit(trx, actor, 'operator.end_sessions', row.username, null, { session_epoch: epoch }, now);
      return epoch;
    });
  }

  /**
   * At start: when no account exists at all, `admin` (role admin) gets `password` (ADMIN_PASSWORD, not one-time).
   * Once any account exists this does nothing, whatever ADMIN_PASSWORD says now. Returns whether it created it.
   */
  async function ensureFirstAdmin(password: string): Promise<boolean> {
    if ((await repo.countOperators(db.kysely)) > 0) return false;
    const passwordHash = await hashPassword(password);
    const now = clock();
    try {
      await db.kysely.transaction().execute(async (trx) => {
        await repo.insertOperator(trx, { username: 'admin', role: 'admin', passwordHash, mustChangePassword: false, now });
        await audit(trx, { operator: 'system' }, 'operator.create', 'admin', null, { role: 'admin', from: 'ADMIN_PASSWORD' }, now);
      });
      return true;
    } catch (err) {
      // Another process starting at the same moment was first.
      if (isUniqueViolation(err)) return false;
      throw err;
    }
  }

  return {
    ...login,
    create,
    resetPassword,
    disable: (username: string, actor: Actor) => setDisabled(username, true, actor),
    enable: (username: string, actor: Actor) => setDisabled(username, false, actor),
    changeRole,
    changePassword,
    endSessions,
    ensureFirstAdmin,
    findById: async (id: number) => {
      const row = await repo.findOperatorById(db.kysely, id);
      return row ? toOperator(row) : null;
    },
    findByUsername: async (username: string) => {
      const row = isUsername(username) ? await repo.findOperatorByUsername(db.kysely, username) : undefined;
      return row ? toOperator(row) : null;
    },
    list: async () => (await repo.listOperators(db.kysely)).map(toOperator),
  };
}

export type OperatorService = ReturnType<typeof createOperatorService>;
