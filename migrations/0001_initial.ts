import type { Kysely } from 'kysely';
import { blobText, tableOptions, timeType, withId } from './helpers.ts';

/** Every table of DESIGN B2 with the indexes its queries filter and sort by. */
export async function up(db: Kysely<unknown>): Promise<void> {
  const time = timeType(db);
  const blob = blobText(db);

  await tableOptions(db, withId(db, db.schema.createTable('orders')))
    .addColumn('order_no', 'varchar(64)', (c) => c.notNull().unique())
    .addColumn('amount_minor', 'bigint', (c) => c.notNull())
    .addColumn('currency', 'varchar(3)', (c) => c.notNull())
    .addColumn('status', 'varchar(16)', (c) => c.notNull())
    .addColumn('payment_method', 'varchar(16)')
    .addColumn('subject', 'varchar(256)')
    .addColumn('transaction_id', 'varchar(128)')
    .addColumn('callback_url', 'varchar(2048)')
    .addColumn('notify_url', 'varchar(2048)')
    .addColumn('metadata', 'text')
    .addColumn('seq', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('flagged', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('paid_at', time)
    .addColumn('created_at', time, (c) => c.notNull())
    .addColumn('updated_at', time, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('orders_status_created_idx').on('orders').columns(['status', 'created_at', 'id']).execute();
  await db.schema.createIndex('orders_created_idx').on('orders').columns(['created_at', 'id']).execute();
  await db.schema.createIndex('orders_transaction_idx').on('orders').column('transaction_id').execute();

  await tableOptions(db, withId(db, db.schema.createTable('payment_logs')))
    .addColumn('order_no', 'varchar(64)')
    .addColumn('gateway', 'varchar(32)', (c) => c.notNull())
    .addColumn('kind', 'varchar(16)', (c) => c.notNull())
    .addColumn('transaction_id', 'varchar(128)')
    .addColumn('amount_minor', 'bigint')
    .addColumn('currency', 'varchar(3)')
    .addColumn('status', 'varchar(16)')
    .addColumn('verdict', 'varchar(32)', (c) => c.notNull())
    .addColumn('flagged', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('message', 'varchar(512)')
    .addColumn('payment_data', blob)
    .addColumn('callback_data', blob, (c) => c.notNull())
    .addColumn('remote_ip', 'varchar(64)')
    .addColumn('created_at', time, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('payment_logs_order_idx').on('payment_logs').columns(['order_no', 'created_at']).execute();
  await db.schema.createIndex('payment_logs_verdict_idx').on('payment_logs').columns(['verdict', 'created_at']).execute();
  await db.schema.createIndex('payment_logs_created_idx').on('payment_logs').column('created_at').execute();
  await db.schema.createIndex('payment_logs_flagged_idx').on('payment_logs').columns(['flagged', 'created_at']).execute();
  await db.schema.createIndex('payment_logs_txn_idx').on('payment_logs').columns(['gateway', 'transaction_id']).execute();

  await tableOptions(db, withId(db, db.schema.createTable('notifications')))
    .addColumn('event_id', 'varchar(64)', (c) => c.notNull().unique())
    .addColumn('order_no', 'varchar(64)', (c) => c.notNull())
    .addColumn('type', 'varchar(32)', (c) => c.notNull())
    .addColumn('seq', 'integer', (c) => c.notNull())
    .addColumn('payload', blob, (c) => c.notNull())
    .addColumn('url', 'varchar(2048)', (c) => c.notNull())
    .addColumn('status', 'varchar(16)', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('schedule_step', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', time, (c) => c.notNull())
    .addColumn('lease_owner', 'varchar(64)')
    .addColumn('lease_expires_at', time)
    .addColumn('last_error', 'varchar(1024)')
    .addColumn('delivered_at', time)
    .addColumn('created_at', time, (c) => c.notNull())
    .addColumn('updated_at', time, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('notifications_due_idx').on('notifications').columns(['status', 'next_attempt_at']).execute();
  await db.schema.createIndex('notifications_order_idx').on('notifications').columns(['order_no', 'seq']).execute();

  await tableOptions(db, withId(db, db.schema.createTable('notification_attempts')))
    .addColumn('notification_id', 'bigint', (c) => c.notNull())
    .addColumn('attempt_no', 'integer', (c) => c.notNull())
    .addColumn('started_at', time, (c) => c.notNull())
    .addColumn('duration_ms', 'integer', (c) => c.notNull())
    .addColumn('status_code', 'integer')
    .addColumn('error', 'varchar(1024)')
    .addColumn('response_excerpt', 'text')
    .execute();
  await db.schema.createIndex('notification_attempts_notification_idx').on('notification_attempts').columns(['notification_id', 'attempt_no']).execute();
  await db.schema.createIndex('notification_attempts_started_idx').on('notification_attempts').column('started_at').execute();

  await tableOptions(db, withId(db, db.schema.createTable('system_config')))
    .addColumn('config_key', 'varchar(128)', (c) => c.notNull().unique())
    .addColumn('config_value', 'text', (c) => c.notNull())
    .addColumn('description', 'varchar(255)')
    .addColumn('created_at', time, (c) => c.notNull())
    .addColumn('updated_at', time, (c) => c.notNull())
    .execute();

  await tableOptions(db, withId(db, db.schema.createTable('api_keys')))
    .addColumn('name', 'varchar(128)', (c) => c.notNull())
    .addColumn('key_prefix', 'varchar(16)', (c) => c.notNull())
    .addColumn('key_hash', 'varchar(64)', (c) => c.notNull().unique())
    .addColumn('created_at', time, (c) => c.notNull())
    .addColumn('last_used_at', time)
    .addColumn('revoked_at', time)
    .execute();

  await tableOptions(db, withId(db, db.schema.createTable('replay_nonces')))
    .addColumn('scope', 'varchar(32)', (c) => c.notNull())
    .addColumn('nonce', 'varchar(128)', (c) => c.notNull())
    .addColumn('expires_at', time, (c) => c.notNull())
    .addUniqueConstraint('replay_nonces_scope_nonce_uq', ['scope', 'nonce'])
    .execute();
  await db.schema.createIndex('replay_nonces_expires_idx').on('replay_nonces').column('expires_at').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ['replay_nonces', 'api_keys', 'system_config', 'notification_attempts', 'notifications', 'payment_logs', 'orders']) {
    await db.schema.dropTable(table).execute();
  }
}
