import { sql, type Kysely } from 'kysely';
import { blobText, tableOptions, timeType, withId } from './helpers.ts';

/**
 * Order expiry and reconciliation: when a pending order is next asked about at its gateway (or closed at its
 * expiry), the lease of the instance asking, what every ask answered, and the sandbox gateway's own ledger.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('orders').addColumn('expires_at', timeType(db)).execute();
  // Next time the reconciler looks at the order (a query, or its expiry); null: nothing left to do.
  await db.schema.alterTable('orders').addColumn('reconcile_at', timeType(db)).execute();
  await db.schema
    .alterTable('orders')
    .addColumn('reconcile_step', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  // The claim of the instance asking now; its answer is recorded only while the claim is still its own.
  await db.schema.alterTable('orders').addColumn('reconcile_lease', 'varchar(64)').execute();
  await db.schema.createIndex('orders_reconcile_idx').on('orders').columns(['status', 'reconcile_at']).execute();

  await tableOptions(db, withId(db, db.schema.createTable('reconcile_attempts')))
    .addColumn('order_no', 'varchar(64)', (c) => c.notNull())
    .addColumn('gateway', 'varchar(16)', (c) => c.notNull())
    .addColumn('trigger', 'varchar(16)', (c) => c.notNull())
    .addColumn('action', 'varchar(16)', (c) => c.notNull())
    .addColumn('gateway_state', 'varchar(32)')
    .addColumn('outcome', 'varchar(32)', (c) => c.notNull())
    .addColumn('message', 'varchar(512)')
    .addColumn('answer', blobText(db))
    .addColumn('duration_ms', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', timeType(db), (c) => c.notNull())
    .execute();
  await db.schema.createIndex('reconcile_attempts_order_idx').on('reconcile_attempts').columns(['order_no', 'created_at']).execute();
  await db.schema.createIndex('reconcile_attempts_created_idx').on('reconcile_attempts').columns(['created_at']).execute();
  // The dashboard's recovered-payment counts: a range count however many rows there are.
  await db.schema.createIndex('reconcile_attempts_outcome_idx').on('reconcile_attempts').columns(['outcome', 'created_at']).execute();

  // What the built-in sandbox gateway itself knows: it answers queries from here, as a real gateway from its own books.
  await tableOptions(db, withId(db, db.schema.createTable('sandbox_payments')))
    .addColumn('order_no', 'varchar(64)', (c) => c.notNull().unique())
    .addColumn('transaction_id', 'varchar(64)', (c) => c.notNull())
    .addColumn('status', 'varchar(16)', (c) => c.notNull())
    .addColumn('amount_minor', 'bigint', (c) => c.notNull())
    .addColumn('currency', 'varchar(3)', (c) => c.notNull())
    .addColumn('notification_lost', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', timeType(db), (c) => c.notNull())
    .execute();

  // Orders already pending are asked about once (they have no expiry: nothing closes them unasked).
  await sql`update orders set reconcile_at = created_at where status = 'pending'`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('sandbox_payments').execute();
  await db.schema.dropTable('reconcile_attempts').execute();
  await db.schema.dropIndex('orders_reconcile_idx').on('orders').execute();
  for (const column of ['reconcile_lease', 'reconcile_step', 'reconcile_at', 'expires_at']) {
    await db.schema.alterTable('orders').dropColumn(column).execute();
  }
}
