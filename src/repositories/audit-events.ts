import { and, desc, eq, lt, type SQL } from 'drizzle-orm'
import { pageOf, type Executor } from '../db/client.js'
import { auditEvents } from '../db/schema.js'

export type AuditEventRow = typeof auditEvents.$inferSelect

export async function insertAuditEvent (ex: Executor, row: AuditEventRow): Promise<void> {
  await ex.insert(auditEvents).values(row)
}

/** A page of events, newest first (ids are UUIDv7), before `cursor`; by user and type when given. */
export async function listAuditEvents (ex: Executor, options: { limit: number, cursor?: string | undefined, userId?: string | undefined, type?: string | undefined }) {
  const filters: (SQL | undefined)[] = [
    options.userId ? eq(auditEvents.userId, options.userId) : undefined,
    options.type ? eq(auditEvents.type, options.type) : undefined,
    options.cursor ? lt(auditEvents.id, options.cursor) : undefined,
  ]
  const page = await ex.select().from(auditEvents).where(and(...filters)).orderBy(desc(auditEvents.id)).limit(options.limit + 1)
  return pageOf(page, options.limit)
}
