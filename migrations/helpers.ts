import { sql, SqliteAdapter, type ColumnDefinitionBuilder, type CreateTableBuilder, type Kysely } from 'kysely';

/** Portable column types: the same migration runs on MySQL/MariaDB and SQLite. */
export function isSqlite(db: Kysely<unknown>): boolean {
  return db.getExecutor().adapter instanceof SqliteAdapter;
}

/** UTC timestamps: DATETIME(3) on MySQL, ISO-like text on SQLite (both sort chronologically). */
export function timeType(db: Kysely<unknown>) {
  return isSqlite(db) ? sql`text` : sql`datetime(3)`;
}

/** Large raw payloads (request bodies, event payloads). */
export function blobText(db: Kysely<unknown>) {
  return isSqlite(db) ? sql`text` : sql`mediumtext`;
}

/** Auto-increment primary key: SQLite only allows it on INTEGER. */
export function withId<T extends string>(db: Kysely<unknown>, table: CreateTableBuilder<T, never>) {
  return table.addColumn('id', isSqlite(db) ? 'integer' : 'bigint', (c: ColumnDefinitionBuilder) => c.primaryKey().autoIncrement());
}

/** InnoDB with binary utf8mb4 collation, so keys compare byte for byte as on SQLite. */
export function tableOptions<T extends string, C extends string>(db: Kysely<unknown>, table: CreateTableBuilder<T, C>) {
  return isSqlite(db) ? table : table.modifyEnd(sql`engine=InnoDB default charset=utf8mb4 collate=utf8mb4_bin`);
}
