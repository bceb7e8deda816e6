import type { Database } from '../db/database.ts';
import { formatAmount } from '../shared/money.ts';
import { NotFoundError } from '../shared/errors.ts';
import type { Clock } from '../shared/time.ts';
import { isUniqueViolation } from '../db/db-errors.ts';
import { recordAudit } from '../audit/audit.repository.ts';
import { prettyPayload, verifiedFields } from './format.ts';
import { countFlagged, existingOrders, findFlaggedEntry, insertReview, listFlagged, type InboxFilter } from './inbox.repository.ts';
import type { ConsoleActor } from './orders.service.ts';
import { flaggedKind } from './verdicts.ts';

export const INBOX_PAGE_SIZE = 20;
export const NOTE_MAX = 2000;

/** The flagged-callback inbox: list, counts for the tabs and the nav badge, and reviews (audit-logged). */
export function createInbox(deps: { db: Database; clock: Clock }) {
  const db = deps.db.kysely;

  async function list(filter: InboxFilter, page: number) {
    const [rows, total, counts] = await Promise.all([
      listFlagged(db, filter, INBOX_PAGE_SIZE, (page - 1) * INBOX_PAGE_SIZE),
      countFlagged(db, filter),
      tabCounts(),
    ]);
    const known = await existingOrders(db, [...new Set(rows.map((r) => r.order_no).filter((n): n is string => n !== null))]);
    const items = rows.map((r) => ({
      ...r,
      kind: flaggedKind(r.verdict, r.status),
      amount: r.amount_minor === null || r.currency === null ? null : formatAmount(Number(r.amount_minor), r.currency),
      orderExists: r.order_no !== null && known.has(r.order_no),
      request: prettyPayload(r.callback_data),
      verified: verifiedFields(r.payment_data),
    }));
    return { filter, items, total, page, pages: Math.max(1, Math.ceil(total / INBOX_PAGE_SIZE)), counts };
  }

  async function tabCounts() {
    const [unreviewed, reviewed] = await Promise.all([countFlagged(db, 'unreviewed'), countFlagged(db, 'reviewed')]);
    return { unreviewed, reviewed, all: unreviewed + reviewed };
  }

  /** Stores the review and its audit row together; 'already_reviewed' when someone else was first. */
  async function review(id: number, note: string, actor: ConsoleActor): Promise<'reviewed' | 'already_reviewed'> {
    try {
      await deps.db.kysely.transaction().execute(async (trx) => {
        const entry = await findFlaggedEntry(trx, id);
        if (!entry) throw new NotFoundError(`Flagged payment-log entry ${id} not found`);
        const now = deps.clock();
        await insertReview(trx, { paymentLogId: id, reviewedBy: actor.operator, note, now });
        await recordAudit(trx, {
          actor: actor.operator,
          action: 'payment_log.review',
          target: `payment_log:${id}`,
          oldValue: null,
          newValue: { note, verdict: entry.verdict, order_no: entry.order_no },
          remoteIp: actor.remoteIp,
          now,
        });
      });
      return 'reviewed';
    } catch (err) {
      if (isUniqueViolation(err)) return 'already_reviewed';
      throw err;
    }
  }

  return { list, review, unreviewedCount: () => countFlagged(db, 'unreviewed') };
}

export type Inbox = ReturnType<typeof createInbox>;
