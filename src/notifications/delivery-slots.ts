/**
 * NOTIFY_CONCURRENCY as slots shared by the two ways the loop claims (a poll, a completion flush): each
 * claimed event holds one slot from its claim until its completion is settled, so claims never exceed it.
 */
export class DeliverySlots {
  private used = 0;

  constructor(
    readonly limit: number,
    /** Told when a release does not match what is in use (a bookkeeping bug); the count is kept within bounds instead of throwing where nothing would catch it. */
    private readonly onMismatch: (message: string) => void = () => undefined,
  ) {}

  /** Reserves every free slot for a claim; what the claim does not fill must be released. */
  takeFree(): number {
    const free = this.limit - this.used;
    if (free <= 0) return 0;
    this.used = this.limit;
    return free;
  }

  release(count: number): void {
    if (count < 0 || count > this.used) {
      this.onMismatch(`delivery slots: releasing ${count} of ${this.used} in use`);
      count = Math.min(Math.max(count, 0), this.used);
    }
    this.used -= count;
  }

  free(): number {
    return this.limit - this.used;
  }

  inUse(): number {
    return this.used;
  }
}
