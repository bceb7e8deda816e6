import { sql, type Insertable, type Selectable } from 'kysely';
import type { Executor } from '../db/database.ts';
import type { OrdersTable } from '../db/schema.ts';
import { GROUP_LIST_ROWS, listQueryTemplate, queryTemplate } from '../db/fast-path/query-template.ts';
import { toDbTime } from '../shared/time.ts';
import type { OrderCursor, OrderStatus } from './order.schema.ts';

export type OrderRow = Selectable<OrdersTable>;

/** Inserts an order and returns its id. */
export async function insertOrder(db: Executor, row: Insertable<OrdersTable>): Promise<number> {
  const result = await db.insertInto('orders').values(row).executeTakeFirst();
  return Number(result.insertId);
}

// Every order lookup (status queries, callbacks' pages, the console): compiled once per database.
const orderTemplate = queryTemplate({ orderNo: true }, (db, v: { orderNo: string }) => db.selectFrom('orders').selectAll().where('order_no', '=', v.orderNo));

export async function findOrderByNo(db: Executor, orderNo: string): Promise<OrderRow | undefined> {
  const { rows } = await orderTemplate.bind(db, { orderNo }).execute();
  return rows[0];
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
  const row = await filtered(db, filter)
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

/** Newest first; with a cursor, the rows strictly after it in that order (keyset pagination). */
export function listOrders(db: Executor, filter: OrderFilter, page: { limit: number; offset: number; after?: OrderCursor }): Promise<OrderRow[]> {
  let query = filtered(db, filter).selectAll();
  const after = page.after;
  if (after) {
    query = query.where((eb) => eb.or([eb('created_at', '<', after.createdAt), eb.and([eb('created_at', '=', after.createdAt), eb('id', '<', after.id)])]));
  }
  return query
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(page.limit)
    .offset(after ? 0 : page.offset)
    .execute();
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

interface TransitionValues {
  orderNo: string;
  fromStatus: string;
  expectedSeq: number;
  to: string;
  nextSeq: number;
  now: string;
  /** NULL keeps the column as it is (one statement serves every kind of transition). */
  transactionId: string | null;
  paidAt: string | null;
  flagged: number | null;
}

// On every applied callback: compiled once per database, then only the values change.
const transitionTemplate = queryTemplate(
  { orderNo: true, fromStatus: true, expectedSeq: true, to: true, nextSeq: true, now: true, transactionId: true, paidAt: true, flagged: true },
  (db, v: TransitionValues) =>
    db
      .updateTable('orders')
      .set((eb) => ({
        status: v.to,
        seq: v.nextSeq,
        updated_at: v.now,
        transaction_id: eb.fn.coalesce(eb.val(v.transactionId), eb.ref('transaction_id')),
        paid_at: eb.fn.coalesce(eb.val(v.paidAt), eb.ref('paid_at')),
        flagged: eb.fn.coalesce(eb.val(v.flagged), eb.ref('flagged')),
      }))
      .where('order_no', '=', v.orderNo)
      .where('status', '=', v.fromStatus)
      .where('seq', '=', v.expectedSeq),
);

/** The compare-and-swap update of one A4 transition, unexecuted: one affected row means it applied. */
export function transitionUpdate(db: Executor, change: TransitionChange) {
  return transitionTemplate.bind(db, transitionValues(change));
}

function transitionValues(change: TransitionChange): TransitionValues {
  const now = toDbTime(change.now);
  return {
    orderNo: change.orderNo,
    fromStatus: change.fromStatus,
    expectedSeq: change.expectedSeq,
    to: change.to,
    nextSeq: change.expectedSeq + 1,
    now,
    transactionId: change.transactionId ?? null,
    paidAt: change.to === 'paid' ? now : null,
    flagged: change.flagged ? 1 : null,
  };
}

/** `CASE order_no WHEN <row's order_no> THEN <row's value> … END`: one column's value for each row of a multi-row update. */
const byOrderNo = <T>(rows: readonly TransitionValues[], value: (row: TransitionValues) => T) =>
  sql<T>`case order_no ${sql.join(
    rows.map((r) => sql`when ${r.orderNo} then ${value(r)}`),
    sql` `,
  )} end`;

// The transitions of a grouped callback commit as one statement: the same compare-and-swap per row as transitionTemplate.
const transitionsTemplate = listQueryTemplate(
  {},
  { orderNo: true, fromStatus: true, expectedSeq: true, to: true, nextSeq: true, now: true, transactionId: true, paidAt: true, flagged: true },
  GROUP_LIST_ROWS,
  (db, _v: object, rows: readonly TransitionValues[]) =>
    db
      .updateTable('orders')
      .set((eb) => ({
        status: byOrderNo(rows, (r) => r.to),
        seq: byOrderNo(rows, (r) => r.nextSeq),
        updated_at: byOrderNo(rows, (r) => r.now),
        transaction_id: eb.fn.coalesce(
          byOrderNo(rows, (r) => r.transactionId),
          eb.ref('transaction_id'),
        ),
        paid_at: eb.fn.coalesce(
          byOrderNo(rows, (r) => r.paidAt),
          eb.ref('paid_at'),
        ),
        flagged: eb.fn.coalesce(
          byOrderNo(rows, (r) => r.flagged),
          eb.ref('flagged'),
        ),
      }))
      .where(
        'order_no',
        'in',
        rows.map((r) => r.orderNo),
      )
      .where(
        'status',
        '=',
        byOrderNo(rows, (r) => r.fromStatus),
      )
      .where(
        'seq',
        '=',
        byOrderNo(rows, (r) => r.expectedSeq),
      ),
);

/** Several orders' transitions (at least one) as one unexecuted update; as many affected rows as changes means all applied. */
export function transitionsUpdate(db: Executor, changes: readonly TransitionChange[]) {
  return transitionsTemplate.bind(db, {}, changes.map(transitionValues));
}

/** Applies one A4 transition and bumps the order's event `seq`; false when another writer got there first. */
export async function transitionOrder(db: Executor, change: TransitionChange): Promise<boolean> {
  const result = await transitionUpdate(db, change).execute();
  return Number(result.numAffectedRows ?? 0) > 0;
}

// The callback's locking read; `FOR UPDATE` only where there are row locks (SQLite has one writer anyway).
const lockedOrderTemplate = queryTemplate({ orderNo: true }, (db, v: { orderNo: string }) =>
  db.selectFrom('orders').selectAll().where('order_no', '=', v.orderNo).forUpdate(),
);

/** The locking read of one order, unexecuted: on MySQL it sees the latest committed row and holds it until the transaction ends; SQLite has one writer anyway. */
export function orderForUpdateSelect(db: Executor, orderNo: string, engine: 'mysql' | 'sqlite') {
  return (engine === 'mysql' ? lockedOrderTemplate : orderTemplate).bind(db, { orderNo });
}

// A grouped callback commit reads its orders together, in index order (so two groups lock rows in the same order).
const lockedOrdersTemplate = listQueryTemplate({}, { orderNo: true }, GROUP_LIST_ROWS, (db, _v: object, rows: readonly { orderNo: string }[]) =>
  db
    .selectFrom('orders')
    .selectAll()
    .where(
      'order_no',
      'in',
      rows.map((r) => r.orderNo),
    )
    .orderBy('order_no')
    .forUpdate(),
);
const ordersTemplate = listQueryTemplate({}, { orderNo: true }, GROUP_LIST_ROWS, (db, _v: object, rows: readonly { orderNo: string }[]) =>
  db
    .selectFrom('orders')
    .selectAll()
    .where(
      'order_no',
      'in',
      rows.map((r) => r.orderNo),
    ),
);

/** The locking read of several orders (at least one), unexecuted; absent order numbers are simply not in the rows. */
export function ordersForUpdateSelect(db: Executor, orderNos: readonly string[], engine: 'mysql' | 'sqlite') {
  return (engine === 'mysql' ? lockedOrdersTemplate : ordersTemplate).bind(
    db,
    {},
    orderNos.map((orderNo) => ({ orderNo })),
  );
}

/** A locking read on MySQL (sees the latest committed row inside a transaction); SQLite has one writer anyway. */
export async function findOrderForUpdate(db: Executor, orderNo: string, engine: 'mysql' | 'sqlite'): Promise<OrderRow | undefined> {
  const { rows } = await orderForUpdateSelect(db, orderNo, engine).execute();
  return rows[0];
}
