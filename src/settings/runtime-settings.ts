import { performance } from 'node:perf_hooks';
import { recordAudit } from '../audit/audit.repository.ts';
import { GATEWAYS, type AppConfig, type GatewayName } from '../config.ts';
import type { Database } from '../db/database.ts';
import { withDbRetry, type DbErrorKind } from '../db/db-errors.ts';
import { ValidationError } from '../shared/errors.ts';
import type { IpAllowlist } from '../shared/ip-allowlist.ts';
import { entriesOutside, narrowAllowlist } from '../shared/ip-ranges.ts';
import type { Logger } from '../shared/logger.ts';
import type { Clock } from '../shared/time.ts';
import {
  RUNTIME_KEYS,
  RUNTIME_SETTINGS,
  SettingValidationError,
  formatAllowlist,
  formatSchedule,
  parseSetting,
  settingDef,
  type RuntimeSettingDef,
} from './settings.keys.ts';
import { SETTINGS_AUDIT_ACTION } from './settings-history.repository.ts';
import { getConfigValues, lockConfigValue, writeConfigValue } from './system-config.repository.ts';

/**
 * Two first writes of one key race on the insert (unique key, a MySQL gap-lock deadlock, or SQLite refusing
 * to upgrade a read transaction of another process): the whole transaction runs again.
 */
const WRITE_RACES: readonly DbErrorKind[] = ['unique_violation', 'deadlock', 'lock_timeout'];

export interface RuntimeSettingsDeps {
  db: Database;
  config: Pick<AppConfig, 'notify' | 'callbackIpAllowlists'>;
  clock: Clock;
  logger: Logger;
  /** How often a started instance re-reads system_config: instances converge within this. */
  refreshMs?: number;
}

export interface SettingsActor {
  operator: string;
  remoteIp?: string | null;
}

/** One runtime setting as this instance sees it (for the settings page). */
export interface SettingState extends RuntimeSettingDef {
  /** The environment's value as text; null for an allowlist that is not set (any address). */
  defaultText: string | null;
  /** The system_config override verbatim, null when there is none. */
  stored: string | null;
  /** Why the stored override is ignored (it does not parse), else null. */
  invalid: string | null;
  source: 'environment' | 'stored';
  /** The value in force; null for "no allowlist" (any address), '' for an allowlist that lets no address through. */
  effectiveText: string | null;
  /** Entries of a stored allowlist that the environment's allowlist does not allow (ignored: the environment is the floor). */
  outsideEnv: string[];
}

export interface UpdateResult {
  changed: boolean;
  oldValue: string | null;
  newValue: string | null;
}

export interface RuntimeSettings {
  /** The notification retry schedule in force (synchronous: the last value read). */
  retryScheduleMs(): readonly number[];
  /** The callback allowlist of `gateway` in force; null = any address. */
  callbackAllowlist(gateway: GatewayName): IpAllowlist | null;
  /** Re-reads the overrides from system_config; rejects when the database cannot be read (values kept). */
  refresh(): Promise<void>;
  /** Periodic refresh every refreshMs; resolves after the first read (a failed read is logged, not thrown). */
  start(): Promise<void>;
  /** Stops reading (the timer, and the lazy reads), then resolves once a read in flight has finished: the last values stay in force. */
  stop(): Promise<void>;
  /**
   * Validates and stores an override (null removes it: the environment value applies again), with its
   * audit_log row in the same transaction, then refreshes this instance. Throws SettingValidationError
   * (400) for a value that does not parse or an allowlist that allows an address the environment's does
   * not, and ValidationError for an unknown key; nothing is written then.
   */
  update(key: string, value: string | null, actor: SettingsActor): Promise<UpdateResult>;
  states(): SettingState[];
  readonly refreshMs: number;
}

/**
 * Runtime settings (issue 6 item 5): the environment's values, overridden by system_config rows that any
 * instance may write (keys and stored formats: settings.keys.ts). Getters are synchronous (hot paths);
 * values change on refresh: every refreshMs once started, or, never started, in the background when a
 * getter finds them older than refreshMs. A stored value that does not parse is ignored with one warning
 * (per value), and the environment's value applies. An allowlist set in the environment is a floor: a
 * stored allowlist only narrows it (an address passes when both allow it; stored empty = the environment's).
 */
export function createRuntimeSettings({ db, config, clock, logger, refreshMs = 5000 }: RuntimeSettingsDeps): RuntimeSettings {
  const defaultSchedule: readonly number[] = Object.freeze([...config.notify.retryScheduleMs]);
  const defaultAllowlist = (gateway: GatewayName) => config.callbackIpAllowlists[gateway] ?? null;

  let stored = new Map<string, string>();
  let invalid = new Map<string, string>();
  let schedule = defaultSchedule;
  let allowlists = new Map<GatewayName, IpAllowlist | null>(GATEWAYS.map((g) => [g, defaultAllowlist(g)]));
  const warned = new Map<string, string>();
  const warnedWide = new Map<string, string>();
  let requested = 0;
  let applied = 0;
  let lastRead = -Infinity;
  let timer: NodeJS.Timeout | undefined;
  let background: Promise<void> | null = null;
  let tick: Promise<void> | null = null;
  /** Once started (and after stop), reads happen on the timer only. */
  let lazy = true;

  function apply(values: Map<string, string>): void {
    let nextSchedule = defaultSchedule;
    const nextAllowlists = new Map<GatewayName, IpAllowlist | null>(GATEWAYS.map((g) => [g, defaultAllowlist(g)]));
    const nextInvalid = new Map<string, string>();
    for (const def of RUNTIME_SETTINGS) {
      const text = values.get(def.key);
      if (text === undefined) {
        warned.delete(def.key);
        continue;
      }
      try {
        const parsed = parseSetting(def, text);
        warned.delete(def.key);
        if (parsed.kind === 'schedule') nextSchedule = parsed.scheduleMs;
        else {
          nextAllowlists.set(def.gateway!, narrowAllowlist(defaultAllowlist(def.gateway!), parsed.allowlist));
          const outside = outsideFloor(def, text);
          if (outside.length > 0 && warnedWide.get(def.key) !== text) {
            warnedWide.set(def.key, text);
            logger.warn({ key: def.key, outside }, 'system_config: allowlist override wider than the environment’s; only addresses both allow may call');
          }
        }
      } catch (err) {
        const reason = (err as Error).message;
        nextInvalid.set(def.key, reason);
        if (warned.get(def.key) !== text) {
          warned.set(def.key, text);
          logger.warn({ key: def.key, reason }, 'system_config: invalid runtime setting ignored; the environment value applies');
        }
      }
    }
    stored = values;
    invalid = nextInvalid;
    schedule = nextSchedule;
    allowlists = nextAllowlists;
  }

  async function refresh(): Promise<void> {
    const seq = ++requested;
    lastRead = performance.now();
    const values = await getConfigValues(db.kysely, RUNTIME_KEYS);
    // A read that started earlier but finished later must not undo a newer one (e.g. right after update).
    if (seq < applied) return;
    applied = seq;
    apply(values);
  }

  const logged = () => refresh().catch((err: unknown) => logger.warn({ err }, 'runtime settings could not be read; the last values stay in force'));

  /** Not started (e.g. an app built without main): a stale getter call re-reads in the background. */
  function lazyRefresh(): void {
    if (!lazy || background || performance.now() - lastRead < refreshMs) return;
    background = logged().finally(() => {
      background = null;
    });
  }

  function states(): SettingState[] {
    return RUNTIME_SETTINGS.map((def) => {
      const defaultText = def.kind === 'schedule' ? formatSchedule(defaultSchedule) : formatAllowlist(defaultAllowlist(def.gateway!));
      const storedText = stored.get(def.key) ?? null;
      const reason = invalid.get(def.key) ?? null;
      const source = storedText !== null && reason === null ? 'stored' : 'environment';
      const effectiveText =
        def.kind === 'schedule'
          ? source === 'stored'
            ? parseSetting(def, storedText!).text
            : defaultText
          : formatAllowlist(allowlists.get(def.gateway!) ?? null);
      const outsideEnv = def.kind === 'allowlist' && source === 'stored' ? outsideFloor(def, storedText!) : [];
      return { ...def, defaultText, stored: storedText, invalid: reason, source, effectiveText, outsideEnv };
    });
  }

  /** Entries of a stored allowlist's text that widen the environment's allowlist. */
  function outsideFloor(def: RuntimeSettingDef, text: string): string[] {
    const floor = defaultAllowlist(def.gateway!);
    const parsed = parseSetting(def, text);
    return floor && parsed.kind === 'allowlist' && parsed.allowlist ? entriesOutside(floor.entries, parsed.allowlist.entries) : [];
  }

  async function update(key: string, value: string | null, actor: SettingsActor): Promise<UpdateResult> {
    const def = settingDef(key);
    if (!def) throw new ValidationError(`Unknown runtime setting: ${key}`, [{ path: 'key', message: 'unknown setting' }]);
    let next: string | null = null;
    if (value !== null) {
      try {
        next = parseSetting(def, value).text;
      } catch (err) {
        throw new SettingValidationError(key, def.kind, (err as Error).message);
      }
      const outside = def.kind === 'allowlist' ? outsideFloor(def, next) : [];
      if (outside.length > 0) {
        const floor = formatAllowlist(defaultAllowlist(def.gateway!));
        const what = `${outside.join(', ')} ${outside.length === 1 ? 'is' : 'are'}`;
        throw new SettingValidationError(
          key,
          def.kind,
          `${what} outside the environment’s allowlist ${def.envName} (${floor}); an override may only narrow it`,
        );
      }
    }
    const result = await withDbRetry(
      () =>
        db.kysely.transaction().execute(async (trx): Promise<UpdateResult> => {
          const old = await lockConfigValue(trx, db.engine, key);
          if (old === next) return { changed: false, oldValue: old, newValue: next };
          const now = clock();
          await writeConfigValue(trx, key, next, old !== null, def.description, now);
          await recordAudit(trx, {
            actor: actor.operator,
            action: SETTINGS_AUDIT_ACTION,
            target: key,
            oldValue: old,
            newValue: next,
            remoteIp: actor.remoteIp ?? null,
            now,
          });
          return { changed: true, oldValue: old, newValue: next };
        }),
      { retryOn: WRITE_RACES },
    );
    try {
      await refresh();
    } catch (err) {
      // Committed, but the re-read failed: apply what was written so this instance is current anyway.
      logger.warn({ err, key }, 'runtime settings: re-read after an update failed; applying the written value');
      const values = new Map(stored);
      if (result.newValue === null) values.delete(key);
      else values.set(key, result.newValue);
      applied = ++requested;
      apply(values);
    }
    return result;
  }

  return {
    refreshMs,
    retryScheduleMs() {
      lazyRefresh();
      return schedule;
    },
    callbackAllowlist(gateway) {
      lazyRefresh();
      return allowlists.get(gateway) ?? null;
    },
    refresh,
    async start() {
      if (timer) return;
      lazy = false;
      timer = setInterval(() => {
        // A slow database must not pile up reads: skip a tick while the previous one runs.
        if (tick) return;
        tick = logged().finally(() => {
          tick = null;
        });
      }, refreshMs);
      timer.unref();
      tick = logged().finally(() => {
        tick = null;
      });
      await tick;
    },
    async stop() {
      clearInterval(timer);
      timer = undefined;
      lazy = false;
      await Promise.all([tick, background]);
    },
    update,
    states,
  };
}
