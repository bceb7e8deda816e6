import { createConnection } from 'mysql2/promise';

const BANNER = (text: string) => `\n${'!'.repeat(78)}\n!! ${text}\n${'!'.repeat(78)}\n`;

/** DESIGN A1: without MYSQL_URL the MariaDB half of the suite is skipped LOUDLY; under CI=true that is a failure. */
export default async function setup(): Promise<void> {
  const url = process.env.MYSQL_URL;
  if (!url) {
    if (process.env.CI === 'true') throw new Error('CI=true but MYSQL_URL is not set: the MariaDB/MySQL tests must run in CI.');
    console.warn(BANNER('MYSQL_URL is not set: storage tests run on SQLite ONLY. MariaDB/MySQL tests were NOT run.'));
    return;
  }
  try {
    const conn = await createConnection({ uri: url, connectTimeout: 5000 });
    await conn.query('select 1');
    await conn.end();
  } catch (err) {
    throw new Error(`MYSQL_URL=${url} does not answer (${(err as Error).message}); start MariaDB or unset MYSQL_URL.`, { cause: err });
  }
}
