import type { OperatorRow } from './operator.repository.ts';
import { fromDbTime } from '../shared/time.ts';

export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];
export const isRole = (value: unknown): value is Role => typeof value === 'string' && (ROLES as readonly string[]).includes(value);

/** 1-64 letters, digits and `_ . @ -`: safe in URLs, audit rows and log lines without escaping. */
export const USERNAME = /^[A-Za-z0-9_.@-]{1,64}$/;
export const isUsername = (value: unknown): value is string => typeof value === 'string' && USERNAME.test(value);

/** The failure that reaches this count locks the account for LOCK_MS (besides the per-address limit of the login form). */
export const LOCK_AFTER_FAILURES = 10;
export const LOCK_MS = 15 * 60_000;

/** An account as the console and the CLI see it (never the password hash or the TOTP secret). */
export interface Operator {
  id: number;
  username: string;
  role: Role;
  mustChangePassword: boolean;
  disabled: boolean;
  totpEnabled: boolean;
  /** Named by each session cookie; a session naming another epoch is over. */
  sessionEpoch: number;
  lockedUntil: Date | null;
  lastLoginAt: Date | null;
  createdAt: Date;
}

export function toOperator(row: OperatorRow): Operator {
  return {
    id: Number(row.id),
    username: row.username,
    // A role this version does not know (written by a newer one) gets the least power.
    role: isRole(row.role) ? row.role : 'viewer',
    mustChangePassword: Number(row.must_change_password) === 1,
    disabled: Number(row.disabled) === 1,
    totpEnabled: Number(row.totp_enabled) === 1,
    sessionEpoch: Number(row.session_epoch),
    lockedUntil: row.locked_until ? fromDbTime(row.locked_until) : null,
    lastLoginAt: row.last_login_at ? fromDbTime(row.last_login_at) : null,
    createdAt: fromDbTime(row.created_at),
  };
}

/** Who does something to an account, for the audit log: a console user, `cli`, or `system` (the first admin). */
export interface Actor {
  operator: string;
  remoteIp?: string | null;
}

/** What a typed username becomes in an audit row: printable, at most 64 characters. */
export const triedName = (value: unknown): string =>
  typeof value === 'string' ? Array.from(value.replace(/\p{C}/gu, '').trim()).slice(0, 64).join('') || '(empty)' : '(none)';
