import { ConfigError, loadConfig, loadDotEnv } from '../config.ts';
import { openDatabase } from '../db/database.ts';
import { migrateToLatest, pendingMigrations } from '../db/migrator.ts';

/** `npm run migrate`: applies pending migrations to DATABASE_URL and reports what it did. */
async function run(): Promise<number> {
  loadDotEnv();
  const config = loadConfig();
  const db = openDatabase(config.database.url, { poolSize: 2 });
  try {
    const applied = await migrateToLatest(db);
    console.log(applied.length > 0 ? `Applied: ${applied.join(', ')}` : 'Database schema is already current.');
    const pending = await pendingMigrations(db);
    if (pending.length > 0) throw new Error(`still pending: ${pending.join(', ')}`);
    return 0;
  } finally {
    await db.close();
  }
}

run().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof ConfigError ? err.message : `Migration failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
