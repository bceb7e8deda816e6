import type { Engine } from '../../src/db/database.ts';

export const MYSQL_URL = process.env.MYSQL_URL;

/** Every storage test runs on SQLite, and again on MariaDB/MySQL when MYSQL_URL is set. */
export const ENGINES: Engine[] = MYSQL_URL ? ['sqlite', 'mysql'] : ['sqlite'];
