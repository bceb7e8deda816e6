export const DELIVERY_OUTCOMES = ['delivered', 'retry', 'dead', 'abandoned'] as const;
export type DeliveryOutcome = (typeof DELIVERY_OUTCOMES)[number];

/** In-process counters of attempt outcomes since start; reading them costs nothing. */
export class DeliveryMetrics {
  private readonly counts: Record<DeliveryOutcome, number> = { delivered: 0, retry: 0, dead: 0, abandoned: 0 };

  record(outcome: DeliveryOutcome): void {
    this.counts[outcome] += 1;
  }

  snapshot(): Readonly<Record<DeliveryOutcome, number>> {
    return { ...this.counts };
  }
}
