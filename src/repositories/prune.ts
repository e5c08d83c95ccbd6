import { sql } from 'drizzle-orm'
import type { Database } from '../db/client.js'

const BATCH = 1000
// Ended sessions are kept a day for support and audit, then deleted with their tokens.
const KEEP_ENDED_MS = 24 * 3600_000

async function deleteInBatches (db: Database, statement: () => ReturnType<typeof sql>): Promise<number> {
  let total = 0
  for (;;) {
    const result = await db.execute(statement()) as unknown as { rows?: unknown[], count?: number, length?: number, affectedRows?: number }
    const n = Number(result.affectedRows ?? result.count ?? result.rows?.length ?? result.length ?? 0)
    total += n
    if (n < BATCH) return total
  }
}

/**
 * Deletes what can no longer be used: sessions past their absolute lifetime, revoked, or idle past
 * their last token's expiry (a day after they ended), spent tokens past their expiry, stale login counts.
 * In small batches, so it never holds many locks at once.
 */
export async function pruneExpired (db: Database, now: Date, loginWindowMs: number) {
  const ended = new Date(now.getTime() - KEEP_ENDED_MS).toISOString()
  const nowIso = now.toISOString()
  const sessions = await deleteInBatches(db, () => sql`
    delete from sessions where id in (
      select s.id from sessions s
      where s.absolute_expires_at < ${ended}::timestamptz
         or s.revoked_at < ${ended}::timestamptz
         or (s.last_used_at < ${ended}::timestamptz and not exists (
              select 1 from refresh_tokens rt where rt.session_id = s.id and rt.expires_at > ${ended}::timestamptz))
      limit ${BATCH})`)
  const tokens = await deleteInBatches(db, () => sql`
    delete from refresh_tokens where id in (
      select id from refresh_tokens where spent_at is not null and expires_at < ${nowIso}::timestamptz limit ${BATCH})`)
  const throttles = await deleteInBatches(db, () => sql`
    delete from login_throttle where key in (
      select key from login_throttle where window_started_at < ${new Date(now.getTime() - loginWindowMs).toISOString()}::timestamptz limit ${BATCH})`)
  return { sessions, tokens, throttles }
}
