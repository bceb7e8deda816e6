import { loadConfig, loadDotEnv, type AppConfig } from './config.ts';
import { openDatabase, type Database } from './db/database.ts';
import { migrateToLatest } from './db/migrator.ts';
import { bootstrapSecrets, type GeneratedSecrets } from './system/secrets.service.ts';
import { systemClock } from './shared/time.ts';

/** What main and the CLIs share: config from the environment, an open and migrated database, secrets. */
export async function bootstrap(
  options: { migrate?: boolean } = {},
): Promise<{ config: AppConfig; db: Database; readDb?: Database; generated: GeneratedSecrets; applied: string[] }> {
  loadDotEnv();
  const baseConfig = loadConfig();
  const db = openDatabase(baseConfig.database.url, { poolSize: baseConfig.database.poolSize });
  try {
    const applied = options.migrate === false ? [] : await migrateToLatest(db);
    const { config, generated } = await bootstrapSecrets(baseConfig, db, systemClock);
    const readDb = config.database.readUrl ? openDatabase(config.database.readUrl, { poolSize: config.database.poolSize }) : undefined;
    return { config, db, readDb, generated, applied };
  } catch (err) {
    await db.close().catch(() => undefined);
    throw err;
  }
}
