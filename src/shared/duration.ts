const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** Parses `15s`, `1m`, `250ms`, `2h`, `1d` into milliseconds; throws on anything else. */
export function parseDuration(text: string): number {
  const match = /^(\d+)(ms|s|m|h|d)$/.exec(text.trim());
  if (!match) throw new Error(`"${text}" is not a duration like 15s, 1m, 2h`);
  const value = Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
  if (value <= 0) throw new Error(`"${text}" must be longer than zero`);
  return value;
}

/** Parses a comma-separated retry schedule such as `15s,1m,4m,10m`. */
export function parseSchedule(text: string): number[] {
  const parts = text.split(',').map((s) => s.trim());
  if (parts.length === 0 || parts.some((p) => p === '')) throw new Error('must be a comma-separated list of durations');
  return parts.map(parseDuration);
}
