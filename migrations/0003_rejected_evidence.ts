import { sql, type Kysely } from 'kysely';
import { isSqlite } from './helpers.ts';

/**
 * Evidence of rejected callbacks: a request refused before verification (address allowlist, signature,
 * shape, stale timestamp) may come from anyone, so it keeps only an excerpt of its body with the full
 * size and SHA-256, and is listed apart from the verified entries of its order (`unverified` = 1).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  // One column per statement: SQLite adds a single column per ALTER TABLE.
  await db.schema.alterTable('payment_logs').addColumn('callback_bytes', 'integer').execute();
  await db.schema.alterTable('payment_logs').addColumn('callback_sha256', 'char(64)').execute();
  await db.schema
    .alterTable('payment_logs')
    .addColumn('unverified', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  // Entries refused by the adapter were written without verified fields; those after verification always have them.
  await sql`update payment_logs set unverified = 1
    where payment_data is null and verdict in ('bad_signature', 'malformed', 'forbidden', 'replayed')`.execute(db);
  // An order's verified entries and its rejected ones are read apart, each newest first.
  await db.schema.createIndex('payment_logs_order_verified_idx').on('payment_logs').columns(['order_no', 'unverified', 'created_at']).execute();
  await dropIndex(db, 'payment_logs_order_idx');
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.createIndex('payment_logs_order_idx').on('payment_logs').columns(['order_no', 'created_at']).execute();
  await dropIndex(db, 'payment_logs_order_verified_idx');
  for (const column of ['unverified', 'callback_sha256', 'callback_bytes']) await db.schema.alterTable('payment_logs').dropColumn(column).execute();
}

/** MySQL names the table of an index; SQLite refuses the ON clause. */
async function dropIndex(db: Kysely<unknown>, name: string): Promise<void> {
  const drop = db.schema.dropIndex(name);
  await (isSqlite(db) ? drop : drop.on('payment_logs')).execute();
}
