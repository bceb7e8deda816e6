import { ConfigError, GENERATED_SECRETS, loadConfig, loadDotEnv, type Config, type SecretName } from '../config.ts';
import {
  checkApiKeys,
  checkClock,
  checkDatabaseVersion,
  checkDataDirectory,
  checkMigrations,
  checkSecrets,
  describeDatabase,
  errorText,
  fail,
  pass,
  probeDatabase,
  type CheckResult,
} from '../system/doctor.checks.ts';
import { pickGatewaySecret, storedGatewaySecret } from '../system/doctor.payment.ts';
import { checkReconciliation, checkRefunds, type ReconcileSettings } from '../system/doctor.reconcile.ts';
import { runSelfTest } from '../system/doctor.selftest.ts';

/** `npm run doctor`: one ✓/⚠/✗ line per check (⚠: passes, but production refuses it), exit status 1 when any fails. */

const USAGE = `Usage: npm run doctor [-- --url <base URL> --api-key <key> [--gateway-secret <secret>]]
  Checks configuration, secrets, database, migrations, clock, data directory and
  which gateways the reconciler can ask about pending orders.
  With --url and --api-key it also runs an end-to-end self-test against a running
  instance: it creates a 0.01 CNY order named doctor_<timestamp>, pays it with a
  notification to /notify signed with the instance's GATEWAY_SECRET (--gateway-secret,
  else GATEWAY_SECRET from the environment or .env, else in development the one
  stored in the database), then reads and queries it.`;

type Env = Record<string, string | undefined>;

interface Options {
  url?: string;
  apiKey?: string;
  gatewaySecret?: string;
}

const FLAGS = { '--url': 'url', '--api-key': 'apiKey', '--gateway-secret': 'gatewaySecret' } as const;
const isFlag = (flag: string): flag is keyof typeof FLAGS => Object.hasOwn(FLAGS, flag);

function parseArgs(args: string[]): Options | { error: string } | 'help' {
  const options: Options = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    if (flag === '--help' || flag === '-h') return 'help';
    // A stray value may be a key: never echo it.
    if (!isFlag(flag)) return { error: arg.startsWith('-') ? `unknown option ${flag}` : 'unexpected argument' };
    const value = eq > 0 ? arg.slice(eq + 1) : args[++i];
    if (!value) return { error: `${flag} needs a value` };
    options[FLAGS[flag]] = value;
  }
  if (!!options.url !== !!options.apiKey) return { error: '--url and --api-key go together' };
  if (options.gatewaySecret && !options.url) return { error: '--gateway-secret is for the self-test: add --url and --api-key' };
  if (options.url && !/^https?:\/\/[^/]+/.test(options.url)) return { error: '--url must be an absolute http:// or https:// URL' };
  return options;
}

/** What the checks need; with an invalid configuration, as much of it as can still be trusted. */
interface Settings {
  production: boolean;
  secrets: Record<SecretName, string | undefined>;
  apiKeys: readonly string[];
  databaseUrl: string | null;
  reconcile: ReconcileSettings;
}

const settingsOf = (config: Config, production: boolean, databaseUrl: string | null, env?: Env): Settings => ({
  production,
  // With an invalid configuration a rejected secret is absent from `config`; judge the raw value instead.
  secrets: env ? (Object.fromEntries(GENERATED_SECRETS.map((n) => [n, env[n]?.trim() ? env[n] : undefined])) as Settings['secrets']) : config.secrets,
  apiKeys: env
    ? (env.API_KEYS ?? '')
        .split(',')
        .map((k) => k.trim())
        .filter(Boolean)
    : config.apiKeys,
  databaseUrl,
  reconcile: config,
});

function loadSettings(env: Env): { result: CheckResult; settings: Settings | null } {
  try {
    const config = loadConfig(env);
    const detail = `valid (NODE_ENV=${config.env}, ${describeDatabase(config.database.url)})`;
    return { result: pass('configuration', detail), settings: settingsOf(config, config.production, config.database.url) };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const listed = err.problems.map((p) => `\n    - ${p}`).join('');
    const result = fail('configuration', `${err.problems.length} problem${err.problems.length === 1 ? '' : 's'}${listed}`);
    // Every problem starts with its variable's name: drop those (and the production rule) to run the other checks.
    const bad = new Set(err.problems.map((p) => /^[A-Z][A-Z0-9_]*/.exec(p)?.[0]));
    const production = env.NODE_ENV === 'production';
    const relaxed: Env = Object.fromEntries(Object.entries(env).filter(([name]) => !bad.has(name)));
    if (production) relaxed.NODE_ENV = 'development';
    // ...keeping production's default of no sandbox, which development would turn on.
    if (production && !relaxed.SANDBOX_ENABLED?.trim()) relaxed.SANDBOX_ENABLED = 'false';
    try {
      const config = loadConfig(relaxed);
      return { result, settings: settingsOf(config, production, bad.has('DATABASE_URL') ? null : config.database.url, env) };
    } catch {
      return { result, settings: null };
    }
  }
}

/** Runs the checks; returns the GATEWAY_SECRET stored in system_config when asked for it (development only, as the secret checks read it). */
async function runLocalChecks(settings: Settings, report: (result: CheckResult) => void, wantStoredGatewaySecret: boolean): Promise<string | undefined> {
  const probe = await probeDatabase(settings.databaseUrl);
  try {
    report(probe.result);
    report(await checkDatabaseVersion(probe));
    report(await checkMigrations(probe));
    for (const result of await checkSecrets(settings.secrets, settings.production, probe.db)) report(result);
    report(await checkApiKeys(settings.apiKeys, settings.production, probe.db));
    report(await checkClock(probe));
    report(checkDataDirectory(settings.databaseUrl));
    report(checkReconciliation(settings.reconcile, settings.production));
    report(checkRefunds(settings.reconcile));
    return wantStoredGatewaySecret && !settings.production && !settings.secrets.GATEWAY_SECRET ? await storedGatewaySecret(probe.db) : undefined;
  } finally {
    await probe.db?.close().catch(() => undefined);
  }
}

/** Belt and braces: whatever a check or an error message says, configured secret values never reach the terminal. */
function redactor(env: Env, given: (string | undefined)[]): (text: string) => string {
  const values: (string | undefined)[] = [
    ...GENERATED_SECRETS,
    'METRICS_TOKEN',
    'WECHATPAY_APIV3_KEY',
    'STRIPE_WEBHOOK_SECRET',
    'STRIPE_SECRET_KEY',
    'ALIPAY_PRIVATE_KEY',
    'WECHATPAY_MCH_PRIVATE_KEY',
  ].map((n) => env[n]);
  values.push(...(env.API_KEYS ?? '').split(','), ...given);
  for (const name of ['DATABASE_URL', 'DATABASE_READ_URL', 'REDIS_URL']) {
    try {
      const { password } = new URL(env[name] ?? '');
      values.push(password, decodeURIComponent(password));
    } catch {
      // not a URL: nothing to hide
    }
  }
  const secrets = [...new Set(values.map((v) => v?.trim()).filter((v): v is string => !!v && v.length >= 4))];
  secrets.sort((a, b) => b.length - a.length);
  return (text) => secrets.reduce((out, secret) => out.split(secret).join('***'), text);
}

async function run(args: string[]): Promise<number> {
  const options = parseArgs(args);
  if (options === 'help' || 'error' in options) {
    if (options === 'help') console.log(USAGE);
    else console.error(`doctor: ${options.error}\n${USAGE}`);
    return options === 'help' ? 0 : 2;
  }
  loadDotEnv();
  let redact = redactor(process.env, [options.apiKey, options.gatewaySecret]);
  const results: CheckResult[] = [];
  const report = (result: CheckResult) => {
    results.push(result);
    console.log(redact(`${result.ok ? (result.warning ? '⚠' : '✓') : '✗'} ${result.name}: ${result.detail}`));
  };

  try {
    const { result, settings } = loadSettings(process.env);
    report(result);
    const wantSecret = !!options.url && !options.gatewaySecret;
    const stored = settings ? await runLocalChecks(settings, report, wantSecret) : undefined;
    if (options.url && options.apiKey) {
      const configured = settings ? settings.secrets.GATEWAY_SECRET : process.env.GATEWAY_SECRET;
      const secret = pickGatewaySecret(options.gatewaySecret, configured, stored);
      redact = redactor(process.env, [options.apiKey, options.gatewaySecret, stored]);
      await runSelfTest(options.url, options.apiKey, report, secret);
    }
  } catch (err) {
    console.error(redact(`doctor failed: ${errorText(err)}`));
    return 1;
  }

  const failed = results.filter((r) => !r.ok).length;
  // Deliberately not the "N passed, M failed" shape: CI parses that from test runners.
  const warned = results.filter((r) => r.warning).length;
  const warnings = warned > 0 ? ` (${warned} with warnings)` : '';
  console.log(failed === 0 ? `doctor: all ${results.length} checks passed${warnings}` : `doctor: ${failed} of ${results.length} checks failed${warnings}`);
  return failed === 0 ? 0 : 1;
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`doctor failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
