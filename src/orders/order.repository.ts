import type { Insertable, Selectable } from 'kysely';
import type { Executor } from '../db/database.ts';
import type { OrdersTable } from '../db/schema.ts';
import { toDbTime } from '../shared/time.ts';
import type { OrderCursor, OrderStatus } from './order.schema.ts';

export type OrderRow = Selectable<OrdersTable>;

export async function insertOrder(db: Executor, row: Insertable<OrdersTable>): Promise<void> {
  await db.insertInto('orders').values(row).execute();
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

/** Conditional transition: only rows still in one of `from` change; the affected-row count tells the winner. */
export async function updateOrderStatus(db: Executor, orderNo: string, from: readonly OrderStatus[], to: OrderStatus, now: Date): Promise<boolean> {
  const result = await db
    .updateTable('orders')
    .set({ status: to, updated_at: toDbTime(now) })
    .where('order_no', '=', orderNo)
    .where('status', 'in', from)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}
