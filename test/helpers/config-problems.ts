import { expect } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';

/** The problems loadConfig reports for `env`; fails the test when it does not throw a ConfigError. */
export function problemsOf(env: Record<string, string | undefined>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(Object.keys(env))}`);
}
