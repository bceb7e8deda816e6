import type { Insertable, Selectable } from 'kysely';
import type { Executor } from '../db/database.ts';
import type { OrdersTable } from '../db/schema.ts';
import { toDbTime } from '../shared/time.ts';
import type { OrderCursor, OrderStatus } from './order.schema.ts';

export type OrderRow = Selectable<OrdersTable>;

/** Inserts an order and returns its id. */
export async function insertOrder(db: Executor, row: Insertable<OrdersTable>): Promise<number> {
  const result = await db.insertInto('orders').values(row).executeTakeFirst();
  return Number(result.insertId);
}

export function findOrderByNo(db: Executor, orderNo: string): Promise<OrderRow | undefined> {
  return db.selectFrom('orders').selectAll().where('order_no', '=', orderNo).executeTakeFirst();
}

export interface OrderFilter {
  status?: OrderStatus;
  from?: Date;
  to?: Date;
}

function filtered(db: Executor, filter: OrderFilter) {
  let query = db.selectFrom('orders');
  if (filter.status) query = query.where('status', '=', filter.status);
  if (filter.from) query = query.where('created_at', '>=', toDbTime(filter.from));
  if (filter.to) query = query.where('created_at', '<=', toDbTime(filter.to));
  return query;
}

export async function countOrders(db: Executor, filter: OrderFilter): Promise<number> {
  const row = await filtered(db, filter).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirst();
  return Number(row?.n ?? 0);
}

/** Newest first; with a cursor, the rows strictly after it in that order (keyset pagination). */
export function listOrders(db: Executor, filter: OrderFilter, page: { limit: number; offset: number; after?: OrderCursor }): Promise<OrderRow[]> {
  let query = filtered(db, filter).selectAll();
  const after = page.after;
  if (after) {
    query = query.where((eb) =>
      eb.or([eb('created_at', '<', after.createdAt), eb.and([eb('created_at', '=', after.createdAt), eb('id', '<', after.id)])]),
    );
  }
  return query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(page.limit).offset(after ? 0 : page.offset).execute();
}

export interface TransitionChange {
  orderNo: string;
  /** Compare-and-swap on (status, seq): the row changes only if nobody changed it since it was read. */
  fromStatus: string;
  expectedSeq: number;
  to: OrderStatus;
  transactionId?: string;
  flagged?: boolean;
  now: Date;
}

/** The compare-and-swap update of one A4 transition, unexecuted: one affected row means it applied. */
export function transitionUpdate(db: Executor, change: TransitionChange) {
  const now = toDbTime(change.now);
  return db
    .updateTable('orders')
    .set({
      status: change.to,
      seq: change.expectedSeq + 1,
      updated_at: now,
      ...(change.transactionId !== undefined ? { transaction_id: change.transactionId } : {}),
      ...(change.to === 'paid' ? { paid_at: now } : {}),
      ...(change.flagged ? { flagged: 1 } : {}),
    })
    .where('order_no', '=', change.orderNo)
    .where('status', '=', change.fromStatus)
    .where('seq', '=', change.expectedSeq);
}

/** Applies one A4 transition and bumps the order's event `seq`; false when another writer got there first. */
export async function transitionOrder(db: Executor, change: TransitionChange): Promise<boolean> {
  const result = await transitionUpdate(db, change).executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

/** The locking read of one order, unexecuted: on MySQL it sees the latest committed row and holds it until the transaction ends; SQLite has one writer anyway. */
export function orderForUpdateSelect(db: Executor, orderNo: string, engine: 'mysql' | 'sqlite') {
  const query = db.selectFrom('orders').selectAll().where('order_no', '=', orderNo);
  return engine === 'mysql' ? query.forUpdate() : query;
}

/** A locking read on MySQL (sees the latest committed row inside a transaction); SQLite has one writer anyway. */
export function findOrderForUpdate(db: Executor, orderNo: string, engine: 'mysql' | 'sqlite'): Promise<OrderRow | undefined> {
  return orderForUpdateSelect(db, orderNo, engine).executeTakeFirst();
}
