import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { sql } from 'kysely';
import { migrations } from '../../migrations/index.ts';
import { countActiveKeys } from '../auth/api-key.repository.ts';
import { GENERATED_SECRETS, type SecretName } from '../config.ts';
import { databaseVersion, openDatabase, pingDatabase, type Database } from '../db/database.ts';
import { pendingMigrations } from '../db/migrator.ts';
import { fromDbTime } from '../shared/time.ts';
import { describeWeakness, MIN_API_KEY_CHARS, MIN_GATEWAY_SECRET_CHARS, secretWeaknesses } from './secret-strength.ts';
import { getConfigValues } from '../settings/system-config.repository.ts';

/** The checks of `npm run doctor`. They report; they never migrate, generate or create anything. */

export interface CheckResult {
  name: string;
  ok: boolean;
  /** Passed, but production would refuse it (shown ⚠). */
  warning?: boolean;
  detail: string;
}

export const pass = (name: string, detail: string): CheckResult => ({ name, ok: true, detail });
export const warn = (name: string, detail: string): CheckResult => ({ name, ok: true, warning: true, detail });
export const fail = (name: string, detail: string): CheckResult => ({ name, ok: false, detail });

/** What production refuses (secret-strength.ts) fails there and is a warning elsewhere. */
const weakResult = (production: boolean, name: string, detail: string, rule: string): CheckResult =>
  production ? fail(name, `${detail}: too weak for production: ${rule}`) : warn(name, `${detail}; production refuses it: ${rule}`);

/** One readable line for any error, including AggregateError (dual-stack connects) and `cause` chains. */
export function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  const own = err instanceof AggregateError && !err.message ? err.errors.map(errorText).join('; ') : err.message || String(code ?? err.name);
  return err.cause ? `${own} (${errorText(err.cause)})` : own;
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const MEMORY_URL = 'sqlite::memory:';

/** The absolute path of a SQLite file URL (resolved like database.ts does), null for MySQL and in-memory. */
export function sqliteFileOf(url: string): string | null {
  return url.startsWith('sqlite:') && url !== MEMORY_URL ? resolve(url.slice('sqlite:'.length)) : null;
}

/** Where the database is, without credentials. */
export function describeDatabase(url: string): string {
  if (url === MEMORY_URL) return 'in-memory SQLite';
  const file = sqliteFileOf(url);
  if (file) return `SQLite ${file}`;
  try {
    const u = new URL(url);
    return `MySQL ${u.hostname}:${u.port || '3306'}${u.pathname}`;
  } catch {
    return 'MySQL (unparsable URL)';
  }
}

/** The opened database for the checks that need it, or why there is none (`problem`). */
export interface DatabaseProbe {
  url: string | null;
  db: Database | null;
  problem: string;
  fileMissing: boolean;
  result: CheckResult;
}

/** Opens and pings the database; a SQLite file that does not exist is reported, not created. */
export async function probeDatabase(url: string | null): Promise<DatabaseProbe> {
  const name = 'database reachable';
  const none = (problem: string, detail: string, fileMissing = false) => ({ url, db: null, problem, fileMissing, result: fail(name, detail) });
  if (url === null) return none('DATABASE_URL is invalid', 'not checked: DATABASE_URL is invalid');
  const file = sqliteFileOf(url);
  if (file && !existsSync(file)) {
    return none('the database file does not exist yet', `${file} does not exist yet (npm run migrate or npm start creates it)`, true);
  }
  let db: Database | null = null;
  try {
    db = openDatabase(url, { poolSize: 2 });
    const started = Date.now();
    await withTimeout(pingDatabase(db), 10_000, 'no answer within 10 s');
    return { url, db, problem: '', fileMissing: false, result: pass(name, `${describeDatabase(url)} answered in ${Date.now() - started} ms`) };
  } catch (err) {
    void db?.close().catch(() => undefined);
    return none('the database is unreachable', `${describeDatabase(url)}: ${errorText(err)}`);
  }
}

const MINIMUM_VERSION = { MySQL: [8, 0], MariaDB: [10, 6], SQLite: [3, 35] } as const;

export async function checkDatabaseVersion(probe: DatabaseProbe): Promise<CheckResult> {
  const name = 'database version';
  // The SQLite library is what matters, and it answers without the (missing) file.
  const library = !probe.db && probe.fileMissing ? openDatabase(MEMORY_URL) : null;
  const db = probe.db ?? library;
  if (!db) return fail(name, `not checked: ${probe.problem}`);
  try {
    const raw = await databaseVersion(db);
    const product = db.engine === 'sqlite' ? 'SQLite' : /mariadb/i.test(raw) ? 'MariaDB' : 'MySQL';
    const numbers = /^(\d+)\.(\d+)/.exec(raw.replace(/^5\.5\.5-/, ''));
    if (!numbers) return fail(name, `${product} ${raw}: version not recognised`);
    const [major, minor] = [Number(numbers[1]), Number(numbers[2])];
    const [needMajor, needMinor] = MINIMUM_VERSION[product];
    const minimum = `${needMajor}.${needMinor} or newer`;
    if (major > needMajor || (major === needMajor && minor >= needMinor)) return pass(name, `${product} ${raw} (supported: ${minimum})`);
    return fail(name, `${product} ${raw} is too old: ${minimum} is required`);
  } catch (err) {
    return fail(name, errorText(err));
  } finally {
    await library?.close();
  }
}

/** Reads the migration state only: applying migrations is `npm run migrate`'s job (or the service's at start). */
export async function checkMigrations(probe: DatabaseProbe): Promise<CheckResult> {
  const name = 'migrations';
  const total = Object.keys(migrations).length;
  if (probe.url === MEMORY_URL) return pass(name, 'in-memory database: migrated at every start');
  if (probe.fileMissing) return fail(name, `all ${total} pending (the database file does not exist yet): run npm run migrate`);
  if (!probe.db) return fail(name, `not checked: ${probe.problem}`);
  try {
    const pending = await pendingMigrations(probe.db);
    if (pending.length === 0) return pass(name, `current (${total} applied)`);
    return fail(name, `${pending.length} of ${total} pending (${pending.join(', ')}): run npm run migrate`);
  } catch (err) {
    return fail(name, `could not read the migration state: ${errorText(err)}`);
  }
}

/** Minimum strength per secret (`productionMin` when production wants more); `measure` gives null when the format is wrong. */
const length = (v: string) => v.length;
const whsecBytes = (v: string) => (/^whsec_[A-Za-z0-9+/]+={0,2}$/.test(v) ? Buffer.from(v.slice(6), 'base64').length : null);
const STRENGTH: Record<SecretName, { min: number; productionMin?: number; unit: string; measure(value: string): number | null }> = {
  GATEWAY_SECRET: { min: 16, productionMin: MIN_GATEWAY_SECRET_CHARS, unit: 'characters', measure: length },
  NOTIFY_SECRET: { min: 24, unit: 'bytes', measure: whsecBytes },
  ADMIN_PASSWORD: { min: 12, unit: 'characters', measure: length },
  SESSION_SECRET: { min: 32, unit: 'characters', measure: length },
};

/** One line per secret; only lengths are shown. Development may keep generated secrets in system_config. */
export async function checkSecrets(secrets: Record<SecretName, string | undefined>, production: boolean, db: Database | null): Promise<CheckResult[]> {
  const missing = GENERATED_SECRETS.filter((name) => !secrets[name]);
  let stored = new Map<string, string>();
  if (!production && missing.length > 0 && db) {
    // An un-migrated database has no system_config yet: then nothing is stored.
    stored = await getConfigValues(
      db.kysely,
      missing.map((n) => `secret.${n}`),
    ).catch(() => stored);
  }
  return GENERATED_SECRETS.map((name) => {
    const label = `secret ${name}`;
    const value = secrets[name] ?? stored.get(`secret.${name}`);
    if (!value && production) return fail(label, 'not set: required in production (secrets are never generated there)');
    if (!value) return pass(label, 'not set: will be generated at first start');
    const source = secrets[name] ? 'set' : 'stored in system_config';
    const { unit, measure } = STRENGTH[name];
    const min = (production && STRENGTH[name].productionMin) || STRENGTH[name].min;
    const size = measure(value);
    if (size === null) return fail(label, `${source}, but not whsec_ followed by base64`);
    if (size < min) return fail(label, `${source}, too weak: ${size} ${unit}, at least ${min} needed`);
    const weak = secretWeaknesses({ [name]: value }).find((w) => w.name === name);
    return weak ? weakResult(production, label, `${source}, ${size} ${unit}`, describeWeakness(weak)) : pass(label, `${source}, ${size} ${unit}`);
  });
}

/** Shorter keys fail everywhere; production wants MIN_API_KEY_CHARS (shorter ones are a warning elsewhere). */
const MIN_API_KEY_LENGTH = 16;

export async function checkApiKeys(envKeys: readonly string[], production: boolean, db: Database | null): Promise<CheckResult> {
  const name = 'API keys';
  const min = production ? MIN_API_KEY_CHARS : MIN_API_KEY_LENGTH;
  const short = envKeys.filter((k) => k.length < min).length;
  if (short > 0) return fail(name, `${short} of the keys in API_KEYS ${short === 1 ? 'is' : 'are'} shorter than ${min} characters`);
  const active = db ? await countActiveKeys(db.kysely).catch(() => null) : null;
  const found = [envKeys.length > 0 ? `${envKeys.length} in API_KEYS` : '', active ? `${active} active in the database` : ''].filter(Boolean);
  const weak = secretWeaknesses({ apiKeys: envKeys }).find((w) => w.name === 'API_KEYS');
  if (weak) return weakResult(production, name, found.join(', '), describeWeakness(weak));
  if (found.length > 0) return pass(name, found.join(', '));
  if (!production) return pass(name, 'none yet: one will be generated (and printed once) at first start');
  return fail(name, `none${active === null ? ' (the database could not be read)' : ''}: set API_KEYS or run npm run apikey -- create <name>`);
}

function localZone(): string {
  const offset = -new Date().getTimezoneOffset();
  const hhmm = [Math.floor(Math.abs(offset) / 60), Math.abs(offset) % 60].map((n) => String(n).padStart(2, '0')).join(':');
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'unknown';
  return `process timezone ${zone} (UTC${offset < 0 ? '-' : '+'}${hhmm}; informational, the service stores UTC)`;
}

const MAX_SKEW_MS = 5000;

/** MySQL's UTC clock against this host's: timestamps are written by both (SQL defaults, lease expiry, app clock). */
export async function checkClock(probe: DatabaseProbe): Promise<CheckResult> {
  const name = 'clock and timezone';
  if (probe.url && probe.url.startsWith('sqlite:')) return pass(name, `SQLite uses this host's clock; ${localZone()}`);
  if (!probe.db) return fail(name, `database clock not compared (${probe.problem}); ${localZone()}`);
  try {
    const before = Date.now();
    const { rows } = await sql<{ now: string | Date }>`select utc_timestamp(3) as now`.execute(probe.db.kysely);
    const local = (before + Date.now()) / 2;
    const value = rows[0]?.now;
    const remote = value instanceof Date ? value.getTime() : fromDbTime(String(value)).getTime();
    if (Number.isNaN(remote)) return fail(name, `unexpected UTC_TIMESTAMP() value; ${localZone()}`);
    const skew = remote - local;
    const text = `database clock ${skew >= 0 ? 'ahead of' : 'behind'} this host by ${(Math.abs(skew) / 1000).toFixed(2)} s`;
    if (Math.abs(skew) <= MAX_SKEW_MS) return pass(name, `${text}; ${localZone()}`);
    return fail(name, `${text}, more than ${MAX_SKEW_MS / 1000} s: synchronise both clocks (NTP); ${localZone()}`);
  } catch (err) {
    return fail(name, `could not read the database clock: ${errorText(err)}`);
  }
}

/** SQLite needs its directory writable (journal and WAL files); it is probed without creating the database. */
export function checkDataDirectory(url: string | null): CheckResult {
  const name = 'data directory';
  if (url === null) return fail(name, 'not checked: DATABASE_URL is invalid');
  const file = sqliteFileOf(url);
  if (!file) return pass(name, url === MEMORY_URL ? 'not used (in-memory SQLite)' : 'not used (MySQL)');
  const dir = dirname(file);
  try {
    if (!existsSync(dir)) {
      let ancestor = dirname(dir);
      while (!existsSync(ancestor)) ancestor = dirname(ancestor);
      if (!statSync(ancestor).isDirectory()) return fail(name, `${dir} cannot be created: ${ancestor} is not a directory`);
      accessSync(ancestor, constants.W_OK | constants.X_OK);
      return pass(name, `${dir} does not exist yet and can be created`);
    }
    if (!statSync(dir).isDirectory()) return fail(name, `${dir} is not a directory`);
    const probe = join(dir, `.doctor-${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
    writeFileSync(probe, '');
    unlinkSync(probe);
    if (existsSync(file)) accessSync(file, constants.R_OK | constants.W_OK);
    return pass(name, `${dir} is writable`);
  } catch (err) {
    return fail(name, `${dir}: ${errorText(err)}`);
  }
}
