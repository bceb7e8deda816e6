import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';

/** Paths pino masks wherever they appear in a log line: keys, secrets and signatures never reach logs. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  '*.sign',
  '*.password',
  '*.secret',
  '*.apiKey',
  '*.api_key',
  '*.key',
  'secrets',
  'config.secrets',
];

/** pino-pretty is a development dependency: absent (npm ci --omit=dev), logs stay JSON. */
function prettyAvailable(): boolean {
  try {
    createRequire(import.meta.url).resolve('pino-pretty');
    return true;
  } catch {
    return false;
  }
}

/** JSON lines for machines; with `pretty` (development on a terminal) pino-pretty's readable lines, redacted all the same. */
export function createLogger(level: string, options: { pretty?: boolean } = {}): Logger {
  const redact = { paths: REDACT_PATHS, censor: '[redacted]' };
  if (options.pretty && prettyAvailable()) {
    return pino({ level, redact, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } });
  }
  return pino({ level, redact });
}

/** Masks signature- and key-like query parameters in a URL before it is logged. */
export function redactUrl(url: string): string {
  if (!url.includes('=')) return url; // nothing the pattern could match (a busy path such as /notify has no query)
  return url.replace(/([?&](?:sign|signature|key|api_key|apikey|token|password|secret)=)[^&#]*/gi, '$1[redacted]');
}

export type { Logger };
