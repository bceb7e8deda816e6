/** A source of "now", injectable so tests can move time. */
export type Clock = () => Date;
export const systemClock: Clock = () => new Date();

/** The storage form of a timestamp on both engines: UTC `YYYY-MM-DD HH:MM:SS.mmm` (sorts as text). */
export function toDbTime(date: Date): string {
  return date.toISOString().replace('T', ' ').replace('Z', '');
}

/** Storage form → ISO-8601 UTC for the API. */
export function toIsoTime(dbTime: string | null): string | null {
  return dbTime === null ? null : `${dbTime.replace(' ', 'T')}Z`;
}

export function fromDbTime(dbTime: string): Date {
  return new Date(`${dbTime.replace(' ', 'T')}Z`);
}
