import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertNonce, purgeExpiredNonces } from '../src/callbacks/nonce.repository.ts';
import { isUniqueViolation } from '../src/db/db-errors.ts';
import { ENGINES } from './helpers/engines.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';

describe.each(ENGINES)('replay nonce store on %s', (engine) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(engine);
  });
  afterAll(() => ctx.close());

  it('refuses a nonce twice per scope, byte for byte, and forgets it after expiry', async () => {
    const now = new Date('2026-06-01T00:00:00Z');
    const later = new Date(now.getTime() + 60_000);
    await insertNonce(ctx.db.kysely, 'generic', 'abc', later);
    const again = await insertNonce(ctx.db.kysely, 'generic', 'abc', later).catch((err: unknown) => err);
    expect(isUniqueViolation(again)).toBe(true);
    await insertNonce(ctx.db.kysely, 'generic', 'ABC', later); // case matters (binary collation on MySQL)
    await insertNonce(ctx.db.kysely, 'alipay', 'abc', later); // scopes are separate
    await insertNonce(ctx.db.kysely, 'generic', 'old', new Date(now.getTime() - 1));

    expect(await purgeExpiredNonces(ctx.db.kysely, now)).toBe(1);
    expect(await purgeExpiredNonces(ctx.db.kysely, new Date(later.getTime() + 1))).toBe(3);
    await insertNonce(ctx.db.kysely, 'generic', 'abc', later); // usable again once purged
  });
});
