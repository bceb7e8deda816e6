import { Migrator, type MigrationResultSet } from 'kysely';
import { migrations } from '../../migrations/index.ts';
import type { Database } from './database.ts';

function migratorFor(db: Database): Migrator {
  return new Migrator({ db: db.kysely, provider: { getMigrations: async () => migrations } });
}

/** Applies pending migrations (Kysely holds a lock, so concurrent starts are safe); throws on failure. */
export async function migrateToLatest(db: Database): Promise<string[]> {
  const { error, results }: MigrationResultSet = await migratorFor(db).migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

/** Names of migrations known to the code but not applied to the database. */
export async function pendingMigrations(db: Database): Promise<string[]> {
  const all = await migratorFor(db).getMigrations();
  return all.filter((m) => m.executedAt === undefined).map((m) => m.name);
}
