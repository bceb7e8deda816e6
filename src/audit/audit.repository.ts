import type { Selectable } from 'kysely';
import type { Executor } from '../db/database.ts';
import type { AuditLogTable } from '../db/schema.ts';
import { toDbTime } from '../shared/time.ts';

export type AuditRow = Selectable<AuditLogTable>;

/** One operator action: who did what to which target, with the value before and after (JSON text or null). */
export interface AuditEntry {
  actor: string;
  action: string;
  target: string | null;
  oldValue?: unknown;
  newValue?: unknown;
  remoteIp?: string | null;
  now: Date;
}

const asText = (value: unknown): string | null => (value === undefined || value === null ? null : typeof value === 'string' ? value : JSON.stringify(value));

/** Appends to audit_log; call it inside the transaction of the change it records (console actions, settings changes). */
export async function recordAudit(db: Executor, entry: AuditEntry): Promise<void> {
  await recordAuditWithId(db, entry);
}

/** {@link recordAudit}, returning the new entry's id (for a page that shows the entry afterwards). */
export async function recordAuditWithId(db: Executor, entry: AuditEntry): Promise<number> {
  const result = await db
    .insertInto('audit_log')
    .values({
      actor: entry.actor.slice(0, 64),
      action: entry.action.slice(0, 64),
      target: entry.target?.slice(0, 128) ?? null,
      old_value: asText(entry.oldValue),
      new_value: asText(entry.newValue),
      remote_ip: entry.remoteIp ?? null,
      created_at: toDbTime(entry.now),
    })
    .executeTakeFirst();
  return Number(result.insertId);
}

/** One audit entry by id, or undefined. */
export function findAudit(db: Executor, id: number): Promise<AuditRow | undefined> {
  return db.selectFrom('audit_log').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Audit entries about one target (e.g. `order:<order_no>`), oldest first (index audit_log_target_idx). */
export function auditForTarget(db: Executor, target: string, limit = 200): Promise<AuditRow[]> {
  return db.selectFrom('audit_log').selectAll().where('target', '=', target).orderBy('created_at').orderBy('id').limit(limit).execute();
}
