import type { Generated, Selectable } from 'kysely';
import type { Executor } from '../db/database.ts';

/**
 * Row types of the tables of migrations/0002_console.ts. Kept here (and attached with `withTables`) so the
 * console does not edit the shared schema file; they can move to src/db/schema.ts at any time.
 */
export interface PaymentLogReviewsTable {
  id: Generated<number>;
  payment_log_id: number;
  reviewed_by: string;
  note: string;
  reviewed_at: string;
}

export interface AuditLogTable {
  id: Generated<number>;
  actor: string;
  action: string;
  target: string | null;
  old_value: string | null;
  new_value: string | null;
  remote_ip: string | null;
  created_at: string;
}

// A type alias, not an interface: withTables needs an index-signature-compatible record.
export type ConsoleTables = {
  payment_log_reviews: PaymentLogReviewsTable;
  audit_log: AuditLogTable;
};

export type ReviewRow = Selectable<PaymentLogReviewsTable>;
export type AuditRow = Selectable<AuditLogTable>;

/** The executor with the console's tables known to the query builder. */
export const withConsoleTables = (db: Executor) => db.withTables<ConsoleTables>();
