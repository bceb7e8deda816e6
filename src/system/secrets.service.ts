import { randomBytes } from 'node:crypto';
import { GENERATED_SECRETS, type AppConfig, type Config, type SecretName } from '../config.ts';
import type { Database } from '../db/database.ts';
import type { Clock } from '../shared/time.ts';
import { createApiKeyService } from '../auth/api-key.service.ts';
import { createOperatorService } from '../operators/operator.service.ts';
import { getConfigValues, insertConfigValue } from '../settings/system-config.repository.ts';

const GENERATORS: Record<SecretName, () => string> = {
  GATEWAY_SECRET: () => randomBytes(24).toString('hex'),
  NOTIFY_SECRET: () => `whsec_${randomBytes(32).toString('base64')}`,
  ADMIN_PASSWORD: () => randomBytes(12).toString('base64url'),
  SESSION_SECRET: () => randomBytes(32).toString('hex'),
};

const storageKey = (name: SecretName) => `secret.${name}`;

/** What this start generated, to be printed once; undefined means it already existed or was configured. */
export interface GeneratedSecrets {
  apiKey?: string;
  adminPassword?: string;
  names: SecretName[];
}

export class MissingApiKeyError extends Error {
  constructor() {
    super('No API key is configured: set API_KEYS or create one with `npm run apikey -- create <name>`.');
  }
}

/**
 * Fills secrets that are not configured. Outside production they are generated once and persisted in
 * system_config (first writer wins across processes); production never generates (config.ts refuses).
 * Then, on a database without console accounts, creates `admin` with ADMIN_PASSWORD.
 */
export async function bootstrapSecrets(config: Config, db: Database, clock: Clock): Promise<{ config: AppConfig; generated: GeneratedSecrets }> {
  const generated: GeneratedSecrets = { names: [] };
  const missing = GENERATED_SECRETS.filter((name) => !config.secrets[name]);
  if (missing.length > 0 && config.production) throw new Error(`missing secrets in production: ${missing.join(', ')}`);

  const secrets = { ...config.secrets } as Record<SecretName, string>;
  if (missing.length > 0) {
    for (const name of missing) {
      const value = GENERATORS[name]();
      if (await insertConfigValue(db.kysely, storageKey(name), value, `${name} generated in development`, clock())) {
        generated.names.push(name);
        if (name === 'ADMIN_PASSWORD') generated.adminPassword = value;
      }
    }
    const stored = await getConfigValues(db.kysely, missing.map(storageKey));
    for (const name of missing) secrets[name] = stored.get(storageKey(name))!;
  }

  const apiKeys = createApiKeyService(db, config.apiKeys, clock);
  if (config.apiKeys.length === 0 && (await apiKeys.countActive()) === 0) {
    if (config.production) throw new MissingApiKeyError();
    generated.apiKey = (await apiKeys.create('development')).key;
  }
  // The first console account comes from ADMIN_PASSWORD; once any account exists it changes nothing.
  await createOperatorService({ db, clock }).ensureFirstAdmin(secrets.ADMIN_PASSWORD);
  return { config: Object.freeze({ ...config, secrets: Object.freeze(secrets) }), generated };
}
