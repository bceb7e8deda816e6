import type { Executor } from '../db/database.ts';
import { GROUP_LIST_ROWS, listQueryTemplate } from '../db/fast-path/query-template.ts';

/** An order event's outbox row (notifications deliver it from there). */
export interface NewEvent {
  eventId: string;
  orderNo: string;
  type: string;
  seq: number;
  payload: string;
  url: string;
  now: string;
}

/** The outbox rows of one statement: an applied callback's, or a grouped commit's (compiled once per row count up to 64). */
const insertEventsTemplate = listQueryTemplate(
  { status: true },
  { eventId: true, orderNo: true, type: true, seq: true, payload: true, url: true, now: true },
  GROUP_LIST_ROWS,
  (db, v: { status: string }, rows: readonly NewEvent[]) =>
    db.insertInto('notifications').values(
      rows.map((r) => ({
        event_id: r.eventId,
        order_no: r.orderNo,
        type: r.type,
        seq: r.seq,
        payload: r.payload,
        url: r.url,
        status: v.status,
        next_attempt_at: r.now,
        created_at: r.now,
        updated_at: r.now,
      })),
    ),
);

/** The outbox inserts of several state changes, as one unexecuted statement (at least one event). */
export function eventsInsert(db: Executor, events: readonly NewEvent[]) {
  // The status is a bound value like the rest: a template holds no constants in its parameters.
  return insertEventsTemplate.bind(db, { status: 'pending' }, events);
}

/** The transactional-outbox insert, unexecuted: it must go in the same transaction as the state change it announces. */
export function eventInsert(db: Executor, event: NewEvent) {
  return eventsInsert(db, [event]);
}

/** The transactional-outbox row: written in the same transaction as the state change it announces. */
export async function insertEvent(db: Executor, event: NewEvent): Promise<void> {
  await eventInsert(db, event).execute();
}
