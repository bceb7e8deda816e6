import type { Kysely } from 'kysely';
import { tableOptions, timeType, withId } from './helpers.ts';

/**
 * Operator console (DESIGN A8): reviews of flagged payment-log entries, and an audit log of operator
 * actions (reviews, closes, resends, settings changes: who, when, old and new value).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const time = timeType(db);

  await tableOptions(db, withId(db, db.schema.createTable('payment_log_reviews')))
    .addColumn('payment_log_id', 'bigint', (c) => c.notNull().unique())
    .addColumn('reviewed_by', 'varchar(64)', (c) => c.notNull())
    .addColumn('note', 'varchar(2000)', (c) => c.notNull())
    .addColumn('reviewed_at', time, (c) => c.notNull())
    .execute();

  await tableOptions(db, withId(db, db.schema.createTable('audit_log')))
    .addColumn('actor', 'varchar(64)', (c) => c.notNull())
    .addColumn('action', 'varchar(64)', (c) => c.notNull())
    .addColumn('target', 'varchar(128)')
    .addColumn('old_value', 'text')
    .addColumn('new_value', 'text')
    .addColumn('remote_ip', 'varchar(64)')
    .addColumn('created_at', time, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('audit_log_created_idx').on('audit_log').columns(['created_at', 'id']).execute();
  await db.schema.createIndex('audit_log_target_idx').on('audit_log').columns(['target', 'created_at']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('audit_log').execute();
  await db.schema.dropTable('payment_log_reviews').execute();
}
