import type { Kysely } from 'kysely';

/**
 * Delivery attempts answered over a connection to a private, loopback, link-local or other non-public address
 * (possible only with NOTIFY_ALLOW_PRIVATE_NETWORKS=true): marked, because their stored response excerpt may
 * show an internal service's answer.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('notification_attempts')
    .addColumn('private_target', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('notification_attempts').dropColumn('private_target').execute();
}
