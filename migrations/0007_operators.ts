import type { Kysely } from 'kysely';
import { tableOptions, timeType, withId } from './helpers.ts';

/**
 * Console accounts: each operator signs in with their own username and password and has a role. `session_epoch`
 * is part of every session cookie, so bumping it ends that operator's sessions at once (disable, reset, "sign out
 * my other sessions"). The TOTP second factor keeps its secret here and its one-time recovery codes beside it.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const time = timeType(db);

  await tableOptions(db, withId(db, db.schema.createTable('operators')))
    .addColumn('username', 'varchar(64)', (c) => c.notNull().unique())
    // viewer | operator | admin
    .addColumn('role', 'varchar(16)', (c) => c.notNull())
    // scrypt$N$r$p$salt$hash (password.ts)
    .addColumn('password_hash', 'varchar(255)', (c) => c.notNull())
    .addColumn('must_change_password', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('disabled', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('failed_logins', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('locked_until', time)
    .addColumn('session_epoch', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('totp_secret', 'varchar(128)')
    .addColumn('totp_enabled', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', time, (c) => c.notNull())
    .addColumn('updated_at', time, (c) => c.notNull())
    .addColumn('last_login_at', time)
    .execute();

  await tableOptions(db, withId(db, db.schema.createTable('operator_recovery_codes')))
    .addColumn('operator_id', 'bigint', (c) => c.notNull())
    .addColumn('code_hash', 'varchar(255)', (c) => c.notNull())
    .addColumn('used_at', time)
    .addColumn('created_at', time, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('operator_recovery_codes_operator_idx').on('operator_recovery_codes').columns(['operator_id']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('operator_recovery_codes').execute();
  await db.schema.dropTable('operators').execute();
}
