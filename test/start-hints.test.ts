import { describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { openDatabase } from '../src/db/database.ts';
import { startHint } from '../src/system/start-hints.ts';
import { MYSQL_URL } from './helpers/engines.ts';

/** A failed start says what to do next, beside the driver's own message. */
describe('start hints', () => {
  it('an unknown MySQL database names the CREATE DATABASE statement to run', () => {
    const hint = startHint(Object.assign(new Error("Unknown database 'shop'"), { code: 'ER_BAD_DB_ERROR', errno: 1049 }));
    expect(hint).toContain('CREATE DATABASE \\`shop\\` CHARACTER SET utf8mb4');
    expect(startHint(Object.assign(new Error('x'), { code: 'EADDRINUSE' }))).toMatch(/PORT=/);
    expect(startHint(new Error('something else'))).toBeUndefined();
    expect(startHint(null)).toBeUndefined();
  });

  it.runIf(MYSQL_URL)('recognises the real driver error of a database that does not exist', async () => {
    const url = new URL(MYSQL_URL!);
    url.pathname = '/no_such_database_for_hint_test';
    const db = openDatabase(url.toString(), { poolSize: 1 });
    const err = await sql`select 1`.execute(db.kysely).then(
      () => null,
      (e: unknown) => e,
    );
    await db.close().catch(() => undefined);
    expect(startHint(err)).toContain('CREATE DATABASE \\`no_such_database_for_hint_test\\`');
  });
});
