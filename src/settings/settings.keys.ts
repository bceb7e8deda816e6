import { GATEWAYS, type GatewayName } from '../config.ts';
import { parseSchedule } from '../shared/duration.ts';
import { ValidationError } from '../shared/errors.ts';
import { parseIpAllowlist, type IpAllowlist } from '../shared/ip-allowlist.ts';

/**
 * The runtime settings an operator may override in system_config (issue 6 item 5), and how their stored
 * text is read. The environment (config.ts) gives the defaults; a system_config row overrides one.
 *
 * - `notify.retry_schedule`: a schedule as in NOTIFY_RETRY_SCHEDULE (`15s,1m,4m`), parsed by parseSchedule.
 * - `callback.ip_allowlist.<gateway>`: as CALLBACK_IP_ALLOWLIST_<GATEWAY>, parsed by parseIpAllowlist. It
 *   only narrows an allowlist set in the environment (runtime-settings.ts keeps that list as the floor):
 *   an EMPTY stored value adds no narrowing, i.e. the environment's list, or any address when there is
 *   none. Deleting the row (reset) goes back to the environment's value.
 */

export const RETRY_SCHEDULE_KEY = 'notify.retry_schedule';
export const ALLOWLIST_PREFIX = 'callback.ip_allowlist.';
export const allowlistKey = (gateway: GatewayName) => `${ALLOWLIST_PREFIX}${gateway}`;

/** Longest stored value accepted from the console. */
export const SETTING_VALUE_MAX = 4000;
/** Sanity bounds on a schedule from the console: beyond these a typo, not an intent (and no Date overflow). */
export const SCHEDULE_MAX_STEPS = 100;
export const SCHEDULE_MAX_STEP_MS = 30 * 86_400_000;

export type SettingKind = 'schedule' | 'allowlist';

export interface RuntimeSettingDef {
  key: string;
  kind: SettingKind;
  /** The environment variable that gives the default. */
  envName: string;
  gateway?: GatewayName;
  description: string;
}

export const RUNTIME_SETTINGS: readonly RuntimeSettingDef[] = Object.freeze([
  {
    key: RETRY_SCHEDULE_KEY,
    kind: 'schedule',
    envName: 'NOTIFY_RETRY_SCHEDULE',
    description: 'Delays between merchant notification attempts (set in the console)',
  },
  ...GATEWAYS.map((gateway) => ({
    key: allowlistKey(gateway),
    kind: 'allowlist' as const,
    envName: `CALLBACK_IP_ALLOWLIST_${gateway.toUpperCase()}`,
    gateway,
    description: `Addresses allowed to call the ${gateway} callbacks; narrows the environment's list, empty = no narrowing (set in the console)`,
  })),
]);

export const RUNTIME_KEYS: readonly string[] = RUNTIME_SETTINGS.map((s) => s.key);

export function settingDef(key: string): RuntimeSettingDef | undefined {
  return RUNTIME_SETTINGS.find((s) => s.key === key);
}

export type ParsedSetting =
  | { kind: 'schedule'; text: string; scheduleMs: readonly number[] }
  | { kind: 'allowlist'; text: string; allowlist: IpAllowlist | null };

const UNITS: Array<[string, number]> = [
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1000],
];

/** Milliseconds back to the notation of NOTIFY_RETRY_SCHEDULE, with the largest exact unit (`90000` → `90s`). */
export function formatSchedule(scheduleMs: readonly number[]): string {
  return scheduleMs
    .map((ms) => {
      const unit = UNITS.find(([, size]) => ms % size === 0);
      return unit ? `${ms / unit[1]}${unit[0]}` : `${ms}ms`;
    })
    .join(',');
}

/** The canonical text of an allowlist (`null`: none, any address). */
export const formatAllowlist = (list: IpAllowlist | null): string | null => (list ? list.entries.join(', ') : null);

/**
 * Parses the stored (or submitted) text of a setting with the parsers of config.ts; throws an Error whose
 * message says what is wrong. `text` of the result is the canonical form that is stored.
 */
export function parseSetting(def: RuntimeSettingDef, raw: string): ParsedSetting {
  if (raw.length > SETTING_VALUE_MAX) throw new Error(`must be at most ${SETTING_VALUE_MAX} characters`);
  if (def.kind === 'schedule') {
    const scheduleMs = parseSchedule(raw);
    if (scheduleMs.length > SCHEDULE_MAX_STEPS) throw new Error(`must have at most ${SCHEDULE_MAX_STEPS} steps`);
    if (scheduleMs.some((ms) => ms > SCHEDULE_MAX_STEP_MS)) throw new Error('each delay must be at most 30d');
    const text = raw
      .split(',')
      .map((s) => s.trim())
      .join(',');
    return { kind: 'schedule', text, scheduleMs: Object.freeze(scheduleMs) };
  }
  if (raw.trim() === '') return { kind: 'allowlist', text: '', allowlist: null };
  const allowlist = parseIpAllowlist(raw);
  return { kind: 'allowlist', text: allowlist.entries.join(', '), allowlist };
}

/** A submitted value that does not parse: 400, with the setting's key and the parser's reason. */
export class SettingValidationError extends ValidationError {
  constructor(
    readonly key: string,
    readonly kind: SettingKind,
    readonly detail: string,
  ) {
    super(`Invalid value for ${key}: ${detail}`, [{ path: key, message: detail }]);
  }
}
