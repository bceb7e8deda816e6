import type { Database } from '../db/database.ts';
import type { RuntimeSettings, SettingsActor } from '../settings/runtime-settings.ts';
import { RUNTIME_KEYS } from '../settings/settings.keys.ts';
import { settingsHistory } from '../settings/settings-history.repository.ts';
import { listConfigRows } from '../settings/system-config.repository.ts';

/** Keys whose values never reach a page: generated secrets (`secret.*`) and anything named like one. */
const SECRET_KEY = /^secret\.|secret|password|passphrase|token|private|api_?key/i;
export const isSecretKey = (key: string) => SECRET_KEY.test(key);

export interface ConsoleConfigRow {
  key: string;
  /** null when masked: the template never receives a secret. */
  value: string | null;
  masked: boolean;
  description: string | null;
  updatedAt: string;
  runtime: boolean;
}

/** The settings page: every system_config row (secrets masked), the runtime settings, their history. */
export function createConsoleSettings(deps: { db: Database; settings: RuntimeSettings }) {
  const db = deps.db.kysely;

  async function page() {
    // Show what is stored now, not what this instance read up to refreshMs ago.
    await deps.settings.refresh();
    const [rows, history] = await Promise.all([listConfigRows(db), settingsHistory(db, RUNTIME_KEYS)]);
    const configRows: ConsoleConfigRow[] = rows.map((r) => {
      const masked = isSecretKey(r.config_key);
      return {
        key: r.config_key,
        value: masked ? null : r.config_value,
        masked,
        description: r.description,
        updatedAt: r.updated_at,
        runtime: RUNTIME_KEYS.includes(r.config_key),
      };
    });
    return { runtime: deps.settings.states(), configRows, history, refreshSeconds: Math.ceil(deps.settings.refreshMs / 1000) };
  }

  /** 'settings_saved', or 'settings_unchanged' when the value was already stored. */
  async function save(key: string, value: string, actor: SettingsActor) {
    const result = await deps.settings.update(key, value, actor);
    return result.changed ? 'settings_saved' : 'settings_unchanged';
  }

  /** Removes the override: the environment's value applies again. */
  async function reset(key: string, actor: SettingsActor) {
    const result = await deps.settings.update(key, null, actor);
    return result.changed ? 'settings_reset' : 'settings_unchanged';
  }

  return { page, save, reset };
}

export type ConsoleSettings = ReturnType<typeof createConsoleSettings>;
