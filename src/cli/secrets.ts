import { ConfigError, GENERATED_SECRETS, loadConfig, loadDotEnv, type SecretName } from '../config.ts';
import { openDatabase } from '../db/database.ts';
import { migrateToLatest } from '../db/migrator.ts';
import { describeDatabase } from '../system/doctor.checks.ts';
import { deleteConfigValues, getConfigValues } from '../settings/system-config.repository.ts';

/**
 * `npm run secrets`: the secrets a development start generated for this database (each database has its
 * own), and `npm run secrets -- reset <NAME|all>` to have the next start generate new ones.
 */

const USAGE = `Usage:
  npm run secrets                      show where each secret comes from, and the values generated for this database
  npm run secrets -- reset <NAME|all>  forget generated values (${GENERATED_SECRETS.join(', ')}); the next start makes new ones`;

const storageKey = (name: SecretName) => `secret.${name}`;
const isSecretName = (value: string): value is SecretName => (GENERATED_SECRETS as readonly string[]).includes(value);

async function run(args: string[]): Promise<number> {
  const [command, target, extra] = args;
  const reset = command === 'reset';
  if ((command !== undefined && !reset) || extra !== undefined || (reset && !target) || (reset && target !== 'all' && !isSecretName(target!))) {
    console.error(USAGE);
    return 2;
  }
  loadDotEnv();
  const config = loadConfig();
  if (config.production) {
    console.error('secrets: production never generates or stores secrets; they come from the environment (see INSTALL.md)');
    return 1;
  }
  const db = openDatabase(config.database.url, { poolSize: 1 });
  try {
    await migrateToLatest(db);
    if (reset) {
      const names = target === 'all' ? [...GENERATED_SECRETS] : [target as SecretName];
      const removed = await deleteConfigValues(db.kysely, names.map(storageKey));
      console.log(
        `Forgot ${removed} generated secret${removed === 1 ? '' : 's'} of ${describeDatabase(config.database.url)}; the next start generates and prints new ones.`,
      );
      const configured = names.filter((n) => config.secrets[n]);
      if (configured.length > 0) console.log(`Still set in the environment or .env (those win): ${configured.join(', ')}`);
      console.log('Running instances keep the old values until they restart; merchants and gateways need the new GATEWAY_SECRET / NOTIFY_SECRET.');
      return 0;
    }
    const stored = await getConfigValues(db.kysely, GENERATED_SECRETS.map(storageKey));
    console.log(`Secrets of ${describeDatabase(config.database.url)} (${config.env}):`);
    for (const name of GENERATED_SECRETS) {
      const value = stored.get(storageKey(name));
      const where = config.secrets[name]
        ? 'set in the environment or .env (not shown)'
        : value
          ? `generated: ${value}`
          : 'not generated yet (the next start generates it)';
      console.log(`  ${name.padEnd(15)} ${where}`);
    }
    console.log('API keys are stored hashed and cannot be shown: npm run apikey -- create <name> makes a new one.');
    return 0;
  } finally {
    await db.close();
  }
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`secrets failed: ${err instanceof ConfigError || err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
