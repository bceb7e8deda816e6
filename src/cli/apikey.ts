import { ConfigError, loadConfig, loadDotEnv } from '../config.ts';
import { openDatabase } from '../db/database.ts';
import { migrateToLatest } from '../db/migrator.ts';
import { createApiKeyService } from '../auth/api-key.service.ts';
import { systemClock } from '../shared/time.ts';

const USAGE = `Usage:
  npm run apikey -- create <name>   create a key (shown once; only its hash is stored)
  npm run apikey -- list            list keys (never the keys themselves)
  npm run apikey -- revoke <id>     revoke a key at once`;

async function run(args: string[]): Promise<number> {
  const [command, arg] = args;
  if (!command || !['create', 'list', 'revoke'].includes(command)) {
    console.error(USAGE);
    return 2;
  }
  loadDotEnv();
  const config = loadConfig();
  const db = openDatabase(config.database.url, { poolSize: 2 });
  try {
    await migrateToLatest(db);
    const keys = createApiKeyService(db, [], systemClock);
    if (command === 'create') {
      const name = arg?.trim();
      if (!name || name.length > 128) {
        console.error('create needs a name of 1-128 characters, e.g. npm run apikey -- create billing-backend');
        return 2;
      }
      const { id, key } = await keys.create(name);
      console.log(`Created API key #${id} "${name}". Store it now; it cannot be shown again:\n\n  ${key}\n`);
      return 0;
    }
    if (command === 'list') {
      const rows = await keys.list();
      if (rows.length === 0) console.log('No API keys in the database.');
      for (const r of rows) {
        const state = r.revoked_at ? `revoked ${r.revoked_at}` : 'active';
        console.log(`#${r.id}\t${r.name}\t${r.key_prefix}…\tcreated ${r.created_at}\tlast used ${r.last_used_at ?? 'never'}\t${state}`);
      }
      return 0;
    }
    const id = Number(arg);
    if (!Number.isSafeInteger(id) || id <= 0) {
      console.error('revoke needs a numeric key id (see npm run apikey -- list)');
      return 2;
    }
    if (!(await keys.revoke(id))) {
      console.error(`No active API key #${id}.`);
      return 1;
    }
    console.log(`Revoked API key #${id}.`);
    return 0;
  } finally {
    await db.close();
  }
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof ConfigError ? err.message : `apikey failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
