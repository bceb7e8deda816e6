import { existsSync } from 'node:fs';
import { z } from 'zod';
import { parseIpAllowlist, type IpAllowlist } from './shared/ip-allowlist.ts';
import { parseDuration, parseSchedule } from './shared/duration.ts';
import { gatewayKeyProblems } from './callbacks/gateways/gateway-keys.ts';
import { describeWeakness, secretWeaknesses } from './system/secret-strength.ts';

/** The one reader of process.env: every setting, validated once and frozen. */

export const GATEWAYS = ['generic', 'sandbox', 'alipay', 'wechatpay', 'stripe'] as const;
export type GatewayName = (typeof GATEWAYS)[number];

/** Secrets that development may generate (and persist) when they are not configured. */
export const GENERATED_SECRETS = ['GATEWAY_SECRET', 'NOTIFY_SECRET', 'ADMIN_PASSWORD', 'SESSION_SECRET'] as const;
export type SecretName = (typeof GENERATED_SECRETS)[number];

type Env = Record<string, string | undefined>;

const blankToUndefined = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);
const opt = <T extends z.ZodType>(schema: T) => z.preprocess(blankToUndefined, schema.optional());
const withDefault = <T extends z.ZodType>(schema: T, fallback: string) => z.preprocess((v) => blankToUndefined(v) ?? fallback, schema);
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');

const allowlist = z.string().transform((value, ctx): IpAllowlist => {
  try {
    return parseIpAllowlist(value);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

const notifySecret = z
  .string()
  .refine(
    (v) => /^whsec_[A-Za-z0-9+/]+={0,2}$/.test(v) && Buffer.from(v.slice(6), 'base64').length >= 24,
    'must be whsec_ followed by the base64 of at least 24 bytes',
  );

const duration = z.string().transform((value, ctx): number => {
  try {
    return parseDuration(value);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

const schedule = z.string().transform((value, ctx): number[] => {
  try {
    return parseSchedule(value);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

/** A gateway API base: absolute http(s), no credentials, query or fragment (paths are appended to it). */
const baseUrl = z.string().refine((v) => {
  try {
    const url = new URL(v);
    return (url.protocol === 'https:' || url.protocol === 'http:') && !url.username && !url.password && !url.search && !url.hash;
  } catch {
    return false;
  }
}, 'must be an absolute http(s) URL without credentials, query or fragment');

/** A URL a gateway calls back: https only (WeChat Pay refuses anything else), no credentials, query or fragment. */
const callbackUrl = baseUrl.refine((v) => new URL(v).protocol === 'https:', 'must be an https:// URL');

const databaseUrl = z.string().refine((v) => /^mysql:\/\/.+/.test(v) || /^sqlite:.+/.test(v), 'must start with mysql:// or sqlite:');

const trustProxy = z.string().transform((v): boolean | number | string => {
  if (v === 'true' || v === 'false') return v === 'true';
  return /^\d+$/.test(v) ? Number(v) : v;
});

const envSchema = z.object({
  NODE_ENV: withDefault(z.enum(['development', 'production', 'test']), 'development'),
  PORT: withDefault(int(0, 65535), '3000'),
  HOST: withDefault(z.string(), '0.0.0.0'),
  DATABASE_URL: withDefault(databaseUrl, 'sqlite:./data/payments.db'),
  DATABASE_READ_URL: opt(databaseUrl),
  DATABASE_POOL_SIZE: withDefault(int(1, 1000), '16'),
  TLS_CERT_FILE: opt(z.string().refine(existsSync, 'file does not exist')),
  TLS_KEY_FILE: opt(z.string().refine(existsSync, 'file does not exist')),
  API_KEYS: opt(z.string()),
  GATEWAY_SECRET: opt(z.string().min(8, 'must be at least 8 characters')),
  NOTIFY_SECRET: opt(notifySecret),
  NOTIFY_SIGN_TYPE: withDefault(z.enum(['MD5', 'HMAC-SHA256']), 'MD5'),
  NOTIFY_RETRY_SCHEDULE: withDefault(z.string(), '15s,1m,4m,10m,30m,1h,2h,6h,15h'),
  NOTIFY_TIMEOUT_MS: withDefault(int(100, 600_000), '10000'),
  // How long a stop waits for requests, deliveries and housekeeping in flight; default: the larger of 25 s and NOTIFY_TIMEOUT_MS + 5 s.
  SHUTDOWN_TIMEOUT_MS: opt(int(1000, 3_600_000)),
  NOTIFY_POLL_INTERVAL_MS: withDefault(int(10, 3_600_000), '1000'),
  NOTIFY_CONCURRENCY: withDefault(int(1, 1000), '16'),
  NOTIFY_EXPECT_BODY: opt(z.string()),
  NOTIFY_ALLOW_PRIVATE_NETWORKS: opt(bool),
  NOTIFY_WORKER: opt(bool),
  API_IP_ALLOWLIST: opt(allowlist),
  TRUST_PROXY: opt(trustProxy),
  RATE_LIMIT_PER_MINUTE: withDefault(int(1, 1_000_000), '600'),
  // Rejected callbacks stored per source address and minute; 0 or off stores every one.
  CALLBACK_REJECT_RATE_PER_MINUTE: withDefault(z.union([z.literal('off'), int(0, 1_000_000)], { error: 'must be a whole number (0-1000000) or off' }), '60'),
  REDIS_URL: opt(z.string().regex(/^rediss?:\/\//, 'must start with redis:// or rediss://')),
  REDIS_PREFIX: withDefault(z.string().max(64), 'pcs:'),
  ADMIN_PASSWORD: opt(z.string().min(8, 'must be at least 8 characters')),
  SESSION_SECRET: opt(z.string().min(32, 'must be at least 32 characters')),
  SANDBOX_ENABLED: opt(bool),
  LOG_LEVEL: withDefault(z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']), 'info'),
  METRICS_TOKEN: opt(z.string().min(16, 'must be at least 16 characters')),
  // Production serves /metrics without METRICS_TOKEN only when this says so.
  METRICS_PUBLIC: opt(bool),
  RETENTION_DAYS: opt(int(1, 36500)),
  ORDER_TTL: withDefault(duration, '30m'),
  RECONCILE_AFTER: withDefault(duration, '1m'),
  RECONCILE_SCHEDULE: withDefault(schedule, '2m,5m,10m,30m'),
  RECONCILE_CONCURRENCY: withDefault(int(1, 256), '4'),
  GENERIC_QUERY_URL: opt(baseUrl),
  GENERIC_REFUND_URL: opt(baseUrl),
  ALIPAY_APP_ID: opt(z.string()),
  ALIPAY_PUBLIC_KEY: opt(z.string()),
  WECHATPAY_MCH_ID: opt(z.string()),
  WECHATPAY_APIV3_KEY: opt(z.string().length(32, 'must be exactly 32 characters')),
  WECHATPAY_PLATFORM_KEYS: opt(z.string()),
  STRIPE_WEBHOOK_SECRET: opt(z.string()),
  ALIPAY_PRIVATE_KEY: opt(z.string()),
  ALIPAY_GATEWAY_URL: withDefault(baseUrl, 'https://openapi.alipay.com/gateway.do'),
  WECHATPAY_MCH_PRIVATE_KEY: opt(z.string()),
  WECHATPAY_MCH_SERIAL: opt(z.string().regex(/^[0-9A-Fa-f]{8,64}$/, 'must be the hexadecimal serial number of the merchant API certificate')),
  WECHATPAY_API_BASE: withDefault(baseUrl, 'https://api.mch.weixin.qq.com'),
  WECHATPAY_REFUND_NOTIFY_URL: opt(callbackUrl),
  STRIPE_SECRET_KEY: opt(z.string().regex(/^(sk|rk)_(test|live)_[A-Za-z0-9]+$/, 'must be a Stripe secret or restricted key (sk_… or rk_…)')),
  STRIPE_API_BASE: withDefault(baseUrl, 'https://api.stripe.com'),
});

type ParsedEnv = z.infer<typeof envSchema>;

function buildConfig(env: ParsedEnv, callbackAllowlists: Partial<Record<GatewayName, IpAllowlist>>) {
  const production = env.NODE_ENV === 'production';
  const tls = env.TLS_CERT_FILE && env.TLS_KEY_FILE ? { certFile: env.TLS_CERT_FILE, keyFile: env.TLS_KEY_FILE } : null;
  return {
    env: env.NODE_ENV,
    production,
    port: env.PORT,
    host: env.HOST,
    tls,
    database: { url: env.DATABASE_URL, readUrl: env.DATABASE_READ_URL ?? null, poolSize: env.DATABASE_POOL_SIZE },
    apiKeys: (env.API_KEYS ?? '')
      .split(',')
      .map((k) => k.trim())
      .filter(Boolean),
    secrets: {
      GATEWAY_SECRET: env.GATEWAY_SECRET,
      NOTIFY_SECRET: env.NOTIFY_SECRET,
      ADMIN_PASSWORD: env.ADMIN_PASSWORD,
      SESSION_SECRET: env.SESSION_SECRET,
    } as Record<SecretName, string | undefined>,
    notify: {
      signType: env.NOTIFY_SIGN_TYPE,
      retryScheduleMs: parseSchedule(env.NOTIFY_RETRY_SCHEDULE),
      timeoutMs: env.NOTIFY_TIMEOUT_MS,
      pollIntervalMs: env.NOTIFY_POLL_INTERVAL_MS,
      concurrency: env.NOTIFY_CONCURRENCY,
      expectBody: env.NOTIFY_EXPECT_BODY ?? null,
      allowPrivateNetworks: env.NOTIFY_ALLOW_PRIVATE_NETWORKS ?? !production,
      // false: this process only accepts requests; another instance on the same database delivers.
      worker: env.NOTIFY_WORKER ?? true,
    },
    apiIpAllowlist: env.API_IP_ALLOWLIST ?? null,
    callbackIpAllowlists: callbackAllowlists,
    trustProxy: env.TRUST_PROXY ?? false,
    rateLimitPerMinute: env.RATE_LIMIT_PER_MINUTE,
    /** null: no limit on rejected callbacks. */
    callbackRejectRatePerMinute:
      env.CALLBACK_REJECT_RATE_PER_MINUTE === 'off' || env.CALLBACK_REJECT_RATE_PER_MINUTE === 0 ? null : env.CALLBACK_REJECT_RATE_PER_MINUTE,
    redis: env.REDIS_URL ? { url: env.REDIS_URL, prefix: env.REDIS_PREFIX } : null,
    sandboxEnabled: env.SANDBOX_ENABLED ?? !production,
    logLevel: env.LOG_LEVEL,
    shutdownTimeoutMs: env.SHUTDOWN_TIMEOUT_MS ?? Math.max(25_000, env.NOTIFY_TIMEOUT_MS + 5_000),
    metricsToken: env.METRICS_TOKEN ?? null,
    retentionDays: env.RETENTION_DAYS ?? null,
    alipay: env.ALIPAY_APP_ID && env.ALIPAY_PUBLIC_KEY ? { appId: env.ALIPAY_APP_ID, publicKey: env.ALIPAY_PUBLIC_KEY } : null,
    wechatpay:
      env.WECHATPAY_MCH_ID && env.WECHATPAY_APIV3_KEY && env.WECHATPAY_PLATFORM_KEYS
        ? { mchId: env.WECHATPAY_MCH_ID, apiV3Key: env.WECHATPAY_APIV3_KEY, platformKeys: env.WECHATPAY_PLATFORM_KEYS }
        : null,
    stripe: env.STRIPE_WEBHOOK_SECRET ? { webhookSecret: env.STRIPE_WEBHOOK_SECRET } : null,
    orderTtlMs: env.ORDER_TTL,
    reconcile: {
      afterMs: env.RECONCILE_AFTER,
      scheduleMs: env.RECONCILE_SCHEDULE,
      concurrency: env.RECONCILE_CONCURRENCY,
      // Gateway calls share the delivery attempt's limit: both are one outbound request the loop waits for.
      timeoutMs: env.NOTIFY_TIMEOUT_MS,
      pollIntervalMs: env.NOTIFY_POLL_INTERVAL_MS,
    },
    /** The gateways' query (and close) APIs; null where one is not configured, so its orders only expire. */
    gatewayApis: {
      generic: env.GENERIC_QUERY_URL ? { queryUrl: env.GENERIC_QUERY_URL } : null,
      /** The generic refund protocol's request endpoint; its refunds are asked about at the query URL. */
      genericRefundUrl: env.GENERIC_REFUND_URL ?? null,
      alipay:
        env.ALIPAY_APP_ID && env.ALIPAY_PUBLIC_KEY && env.ALIPAY_PRIVATE_KEY
          ? { appId: env.ALIPAY_APP_ID, publicKey: env.ALIPAY_PUBLIC_KEY, privateKey: env.ALIPAY_PRIVATE_KEY, gatewayUrl: env.ALIPAY_GATEWAY_URL }
          : null,
      wechatpay:
        env.WECHATPAY_MCH_ID && env.WECHATPAY_PLATFORM_KEYS && env.WECHATPAY_MCH_PRIVATE_KEY && env.WECHATPAY_MCH_SERIAL
          ? {
              mchId: env.WECHATPAY_MCH_ID,
              platformKeys: env.WECHATPAY_PLATFORM_KEYS,
              privateKey: env.WECHATPAY_MCH_PRIVATE_KEY,
              serial: env.WECHATPAY_MCH_SERIAL,
              apiBase: env.WECHATPAY_API_BASE,
              /** Where WeChat Pay sends refund results: it notifies only the notify_url given with each refund. */
              refundNotifyUrl: env.WECHATPAY_REFUND_NOTIFY_URL ?? null,
            }
          : null,
      stripe: env.STRIPE_SECRET_KEY ? { secretKey: env.STRIPE_SECRET_KEY, apiBase: env.STRIPE_API_BASE } : null,
    },
  };
}

export type Config = Readonly<ReturnType<typeof buildConfig>>;

/** Thrown with every problem at once, so an operator fixes the environment in one pass. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Raw-value checks that also run when some fields failed to parse, so every problem is reported at once. */
function productionProblems(source: Env): string[] {
  const value = (name: string) => blankToUndefined(source[name]) as string | undefined;
  if (value('NODE_ENV') !== 'production') return [];
  const problems = GENERATED_SECRETS.filter((name) => !value(name)).map((name) => `${name}: required in production (secrets are never generated there)`);
  const weak = secretWeaknesses({
    apiKeys: (value('API_KEYS') ?? '')
      .split(',')
      .map((k) => k.trim())
      .filter(Boolean),
    GATEWAY_SECRET: value('GATEWAY_SECRET'),
    ADMIN_PASSWORD: value('ADMIN_PASSWORD'),
    STRIPE_WEBHOOK_SECRET: value('STRIPE_WEBHOOK_SECRET'),
  });
  for (const w of weak) problems.push(`${w.name}: ${describeWeakness({ ...w, rule: `${w.rule} in production` })}`);
  const metricsPublic = value('METRICS_PUBLIC') === 'true' || value('METRICS_PUBLIC') === '1';
  if (!value('METRICS_TOKEN') && !metricsPublic) {
    problems.push('METRICS_TOKEN: required in production, so that /metrics is not public (or set METRICS_PUBLIC=true to serve it without a token)');
  }
  return problems;
}

function pairProblems(source: Env): string[] {
  const problems: string[] = [];
  if (!blankToUndefined(source.TLS_CERT_FILE) !== !blankToUndefined(source.TLS_KEY_FILE)) problems.push('TLS_CERT_FILE and TLS_KEY_FILE: set both or neither');
  const schedule = blankToUndefined(source.NOTIFY_RETRY_SCHEDULE) as string | undefined;
  try {
    if (schedule !== undefined) parseSchedule(schedule);
  } catch (err) {
    problems.push(`NOTIFY_RETRY_SCHEDULE: ${(err as Error).message}`);
  }
  const set = (name: string) => blankToUndefined(source[name]) !== undefined;
  // A signing key without the rest of its gateway's settings would silently do nothing: say so instead.
  if (set('ALIPAY_PRIVATE_KEY') && !(set('ALIPAY_APP_ID') && set('ALIPAY_PUBLIC_KEY')))
    problems.push('ALIPAY_PRIVATE_KEY: also needs ALIPAY_APP_ID and ALIPAY_PUBLIC_KEY (the answers are verified with it)');
  if (set('WECHATPAY_MCH_PRIVATE_KEY') !== set('WECHATPAY_MCH_SERIAL'))
    problems.push('WECHATPAY_MCH_PRIVATE_KEY and WECHATPAY_MCH_SERIAL: set both or neither');
  if (set('WECHATPAY_MCH_PRIVATE_KEY') && !(set('WECHATPAY_MCH_ID') && set('WECHATPAY_PLATFORM_KEYS')))
    problems.push('WECHATPAY_MCH_PRIVATE_KEY: also needs WECHATPAY_MCH_ID and WECHATPAY_PLATFORM_KEYS (the answers are verified with them)');
  const shutdownMs = Number(blankToUndefined(source.SHUTDOWN_TIMEOUT_MS));
  const notifyMs = Number(blankToUndefined(source.NOTIFY_TIMEOUT_MS) ?? 10_000);
  // Shorter, a stop could cut a delivery short before it is recorded, and the merchant would get it twice.
  if (Number.isInteger(shutdownMs) && Number.isInteger(notifyMs) && shutdownMs < notifyMs + 1000) {
    problems.push(`SHUTDOWN_TIMEOUT_MS: must be at least NOTIFY_TIMEOUT_MS + 1000 (${notifyMs + 1000}), so that a stop lets a delivery in flight finish`);
  }
  return problems;
}

function parseCallbackAllowlists(source: Env, problems: string[]) {
  const lists: Partial<Record<GatewayName, IpAllowlist>> = {};
  const prefix = 'CALLBACK_IP_ALLOWLIST_';
  for (const [name, value] of Object.entries(source)) {
    if (!name.startsWith(prefix) || blankToUndefined(value) === undefined) continue;
    const gateway = name.slice(prefix.length).toLowerCase() as GatewayName;
    if (!GATEWAYS.includes(gateway)) {
      problems.push(`${name}: unknown gateway (known: ${GATEWAYS.join(', ')})`);
      continue;
    }
    const parsed = allowlist.safeParse(value);
    if (parsed.success) lists[gateway] = parsed.data;
    else problems.push(`${name}: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
  }
  return lists;
}

/** Parses configuration from `source` (process.env by default); throws ConfigError listing every problem. */
export function loadConfig(source: Env = process.env): Config {
  const parsed = envSchema.safeParse(source);
  const problems = [
    ...(parsed.success ? [] : parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`)),
    ...productionProblems(source),
    ...pairProblems(source),
    // The gateways parse their own keys; a key that cannot be parsed is reported here with everything else.
    ...gatewayKeyProblems(source),
  ];
  const callbackAllowlists = parseCallbackAllowlists(source, problems);
  if (!parsed.success || problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(buildConfig(parsed.data, callbackAllowlists));
}

/** Reads `.env` from the working directory when present; real environment variables win. */
export function loadDotEnv(path = '.env'): void {
  if (existsSync(path)) process.loadEnvFile(path);
}

/** Configuration once every secret is known (configured, or generated and persisted in development). */
export type AppConfig = Readonly<Omit<Config, 'secrets'> & { secrets: Readonly<Record<SecretName, string>> }>;
