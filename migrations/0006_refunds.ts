import { type Kysely } from 'kysely';
import { blobText, tableOptions, timeType, withId } from './helpers.ts';

/**
 * Refunds: what was refunded of each order (settled) and what pending refunds hold back, so that no sequence of
 * requests can refund more than was paid; every refund with its gateway's answers and when it is next asked about.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('orders')
    .addColumn('refunded_minor', 'bigint', (c) => c.notNull().defaultTo(0))
    .execute();
  // The sum of pending refunds: reserved in the transaction that creates each one, released when it settles.
  await db.schema
    .alterTable('orders')
    .addColumn('refund_reserved_minor', 'bigint', (c) => c.notNull().defaultTo(0))
    .execute();

  await tableOptions(db, withId(db, db.schema.createTable('refunds')))
    .addColumn('refund_no', 'varchar(64)', (c) => c.notNull().unique())
    .addColumn('order_no', 'varchar(64)', (c) => c.notNull())
    .addColumn('gateway', 'varchar(16)', (c) => c.notNull())
    .addColumn('amount_minor', 'bigint', (c) => c.notNull())
    .addColumn('currency', 'varchar(3)', (c) => c.notNull())
    .addColumn('status', 'varchar(16)', (c) => c.notNull())
    .addColumn('reason', 'varchar(256)')
    .addColumn('gateway_refund_id', 'varchar(128)')
    .addColumn('failure_reason', 'varchar(256)')
    // Who asked: `api` or `console:<user>`.
    .addColumn('requested_by', 'varchar(64)', (c) => c.notNull())
    // When the refund is next sent or asked about at its gateway; null once settled. The lease is the instance doing it.
    .addColumn('check_at', timeType(db))
    .addColumn('check_step', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('check_lease', 'varchar(64)')
    // The last gateway answer, as evidence on the order's timeline.
    .addColumn('last_answer', blobText(db))
    .addColumn('created_at', timeType(db), (c) => c.notNull())
    .addColumn('updated_at', timeType(db), (c) => c.notNull())
    .addColumn('completed_at', timeType(db))
    .execute();
  await db.schema.createIndex('refunds_order_idx').on('refunds').columns(['order_no', 'created_at']).execute();
  await db.schema.createIndex('refunds_check_idx').on('refunds').columns(['status', 'check_at']).execute();
  await db.schema.createIndex('refunds_gateway_id_idx').on('refunds').columns(['gateway', 'gateway_refund_id']).execute();

  // The sandbox gateway's own refund ledger: it answers refund queries from here and notifies from here.
  await tableOptions(db, withId(db, db.schema.createTable('sandbox_refunds')))
    .addColumn('refund_no', 'varchar(64)', (c) => c.notNull().unique())
    .addColumn('order_no', 'varchar(64)', (c) => c.notNull())
    .addColumn('amount_minor', 'bigint', (c) => c.notNull())
    .addColumn('currency', 'varchar(3)', (c) => c.notNull())
    .addColumn('status', 'varchar(16)', (c) => c.notNull())
    .addColumn('created_at', timeType(db), (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('sandbox_refunds').execute();
  await db.schema.dropTable('refunds').execute();
  for (const column of ['refund_reserved_minor', 'refunded_minor']) {
    await db.schema.alterTable('orders').dropColumn(column).execute();
  }
}
