import type { Executor } from '../db/database.ts';

/** Events of one order with their delivery attempts, oldest event first (the order detail's `notifications`). */
export async function listNotificationsForOrder(db: Executor, orderNo: string) {
  const events = await db
    .selectFrom('notifications')
    .select(['id', 'event_id', 'type', 'seq', 'payload', 'url', 'status', 'attempts', 'next_attempt_at', 'last_error', 'delivered_at', 'created_at'])
    .where('order_no', '=', orderNo)
    .orderBy('seq', 'asc')
    .execute();
  if (events.length === 0) return [];
  const attempts = await db
    .selectFrom('notification_attempts')
    .select(['notification_id', 'attempt_no', 'started_at', 'duration_ms', 'status_code', 'error', 'response_excerpt'])
    .where('notification_id', 'in', events.map((e) => e.id))
    .orderBy('attempt_no', 'asc')
    .execute();
  return events.map((event) => ({ ...event, attemptRows: attempts.filter((a) => Number(a.notification_id) === Number(event.id)) }));
}

export type NotificationWithAttempts = Awaited<ReturnType<typeof listNotificationsForOrder>>[number];

export interface NewEvent {
  eventId: string;
  orderNo: string;
  type: string;
  seq: number;
  payload: string;
  url: string;
  now: string;
}

/** The transactional-outbox insert, unexecuted: it must go in the same transaction as the state change it announces. */
export function eventInsert(db: Executor, event: NewEvent) {
  return db
    .insertInto('notifications')
    .values({
      event_id: event.eventId,
      order_no: event.orderNo,
      type: event.type,
      seq: event.seq,
      payload: event.payload,
      url: event.url,
      status: 'pending',
      next_attempt_at: event.now,
      created_at: event.now,
      updated_at: event.now,
    });
}

/** The transactional-outbox row: written in the same transaction as the state change it announces. */
export async function insertEvent(db: Executor, event: NewEvent): Promise<void> {
  await eventInsert(db, event).execute();
}
