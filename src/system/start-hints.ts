/** What to do about the start failures a newcomer meets most, said next to the driver's own message. */
export function startHint(err: unknown): string | undefined {
  const e = err as { code?: string; errno?: number; message?: string } | null;
  const message = e?.message ?? '';
  const unknownDatabase = e?.code === 'ER_BAD_DB_ERROR' || e?.errno === 1049 ? /Unknown database '([^']+)'/.exec(message) : null;
  if (unknownDatabase) {
    const name = unknownDatabase[1]!.replace(/`/g, '');
    return [
      `The database "${name}" does not exist yet. Create it once (the service creates its tables itself):`,
      `  mysql -u root -p -e "CREATE DATABASE \\\`${name}\\\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"`,
      'and grant the service user its rights as INSTALL.md shows, then start again.',
    ].join('\n');
  }
  if (e?.code === 'ER_ACCESS_DENIED_ERROR')
    return 'The database refused the user or password in DATABASE_URL (percent-encode special characters in the password).';
  if (e?.code === 'ECONNREFUSED') return 'Nothing answers at the database address in DATABASE_URL: is the server running and listening there?';
  if (e?.code === 'EADDRINUSE') return 'Another program already listens on that port: stop it or choose another with PORT=…';
  return undefined;
}
