/** A source of "now", injectable so tests can move time. */
export type Clock = () => Date;
export const systemClock: Clock = () => new Date();

// A callback converts the same instants several times (now, a nonce's expiry): the last two results are reused.
let lastMs = Number.NaN;
let lastText = '';
let otherMs = Number.NaN;
let otherText = '';

/** The storage form of a timestamp on both engines: UTC `YYYY-MM-DD HH:MM:SS.mmm` (sorts as text). */
export function toDbTime(date: Date): string {
  const ms = date.getTime();
  if (ms === lastMs) return lastText;
  if (ms === otherMs) return otherText;
  const text = date.toISOString().replace('T', ' ').replace('Z', ''); // throws for an invalid date, which is never cached
  otherMs = lastMs;
  otherText = lastText;
  lastMs = ms;
  lastText = text;
  return text;
}

/** Storage form → ISO-8601 UTC for the API. */
export function toIsoTime(dbTime: string | null): string | null {
  return dbTime === null ? null : `${dbTime.replace(' ', 'T')}Z`;
}

export function fromDbTime(dbTime: string): Date {
  return new Date(`${dbTime.replace(' ', 'T')}Z`);
}
