import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Database } from '../db/database.ts';
import { fromDbTime, type Clock } from '../shared/time.ts';
import * as repo from './api-key.repository.ts';

const KEY_PREFIX = 'pcs_';
/** last_used_at is refreshed at most this often, so authentication stays a read. */
const TOUCH_INTERVAL_MS = 60_000;

/** Keys are 32 random bytes, so a fast hash is enough: nothing to brute-force, lookup stays indexed. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

export function generateApiKey(): string {
  return KEY_PREFIX + randomBytes(32).toString('base64url');
}

export type ApiPrincipal = { kind: 'env'; index: number } | { kind: 'db'; id: number; name: string };

export interface ApiKeyService {
  authenticate(key: string): Promise<ApiPrincipal | null>;
  create(name: string): Promise<{ id: number; key: string }>;
  list(): ReturnType<typeof repo.listApiKeys>;
  revoke(id: number): Promise<boolean>;
  countActive(): Promise<number>;
}

export function createApiKeyService(db: Database, envKeys: readonly string[], clock: Clock): ApiKeyService {
  const envHashes = envKeys.map((k) => Buffer.from(hashApiKey(k), 'hex'));
  return {
    async authenticate(key) {
      const hash = hashApiKey(key);
      const candidate = Buffer.from(hash, 'hex');
      const envIndex = envHashes.findIndex((h) => timingSafeEqual(h, candidate));
      if (envIndex >= 0) return { kind: 'env', index: envIndex };
      const row = await repo.findActiveKeyByHash(db.kysely, hash);
      if (!row) return null;
      const now = clock();
      if (!row.last_used_at || now.getTime() - fromDbTime(row.last_used_at).getTime() > TOUCH_INTERVAL_MS) {
        await repo.touchApiKey(db.kysely, row.id, now);
      }
      return { kind: 'db', id: row.id, name: row.name };
    },
    async create(name) {
      const key = generateApiKey();
      const id = await repo.insertApiKey(db.kysely, { name, keyPrefix: key.slice(0, 10), keyHash: hashApiKey(key), now: clock() });
      return { id, key };
    },
    list: () => repo.listApiKeys(db.kysely),
    revoke: (id) => repo.revokeApiKey(db.kysely, id, clock()),
    countActive: () => repo.countActiveKeys(db.kysely),
  };
}
