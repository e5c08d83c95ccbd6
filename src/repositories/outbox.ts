import { eq, sql } from 'drizzle-orm'
import type { Executor } from '../db/client.js'
import { outbox, type OutboxKind } from '../db/schema.js'

export type NewOutboxRow = typeof outbox.$inferInsert
export type OutboxRow = typeof outbox.$inferSelect

export async function enqueueMail (ex: Executor, row: { id: string, kind: Exclude<OutboxKind, 'webhook'>, recipient: string, tokenId?: string | null, data?: Record<string, unknown>, now: Date }): Promise<void> {
  await ex.insert(outbox).values({ id: row.id, kind: row.kind, recipient: row.recipient, tokenId: row.tokenId ?? null, data: row.data ?? null, createdAt: row.now, nextAttemptAt: row.now })
}

/** A webhook event: its body is fixed now; the row id is its webhook-id, the same on every retry. */
export async function enqueueWebhook (ex: Executor, row: { id: string, body: Record<string, unknown>, now: Date }): Promise<void> {
  await ex.insert(outbox).values({ id: row.id, kind: 'webhook', recipient: 'webhook', data: row.body, createdAt: row.now, nextAttemptAt: row.now })
}

/**
 * Claims up to `limit` due messages for `leaseMs`: their next attempt moves past the lease, so another
 * instance (SKIP LOCKED) or a later poll will not take them while this one sends; a crash mid-send
 * just lets the lease run out and the message is tried again.
 */
export async function claimDueMail (ex: Executor, now: Date, leaseMs: number, limit: number): Promise<OutboxRow[]> {
  const nowIso = now.toISOString()
  const leaseEnd = new Date(now.getTime() + leaseMs).toISOString()
  return ex.update(outbox)
    .set({ attempts: sql`${outbox.attempts} + 1`, nextAttemptAt: sql`${leaseEnd}::timestamptz` })
    .where(sql`${outbox.id} in (
      select id from outbox where status = 'pending' and next_attempt_at <= ${nowIso}::timestamptz
      order by next_attempt_at limit ${limit} for update skip locked)`)
    .returning()
}

export async function setMailToken (ex: Executor, id: string, tokenId: string): Promise<void> {
  await ex.update(outbox).set({ tokenId }).where(eq(outbox.id, id))
}

export async function finishMail (ex: Executor, id: string, status: 'sent' | 'skipped' | 'failed', now: Date, error?: string): Promise<void> {
  await ex.update(outbox).set({ status, finishedAt: now, ...(error ? { lastError: error } : {}) }).where(eq(outbox.id, id))
}

export async function retryMailAt (ex: Executor, id: string, at: Date, error: string): Promise<void> {
  await ex.update(outbox).set({ nextAttemptAt: at, lastError: error }).where(eq(outbox.id, id))
}
