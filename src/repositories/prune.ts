import { sql } from 'drizzle-orm'
import type { Database } from '../db/client.js'
import { usableMfaChallenge } from './mfa.js'
import { deleteExpiredWebauthnChallenges } from './passkeys.js'

const BATCH = 1000
// Ended sessions are kept a day for support and audit, then deleted.
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

export interface PruneRules {
  /** Attempt counts whose window started longer ago than this are stale. */
  attemptWindowMs: number
  /** Wrong codes that void an mfaToken. */
  mfaChallengeMaxFailures: number
  /** AUDIT_RETENTION_DAYS: older security history goes */
  auditRetentionDays: number
}

/**
 * Deletes what can no longer be used: sessions ended (revoked, past their absolute lifetime, or idle past
 * their refresh expiry) over a day ago, stale attempt counts, and sign-ins waiting for a second factor whose
 * mfaToken is spent, expired or voided by wrong codes (at once: an unknown token gets the same answer, and
 * the audit lines keep the failures), and passkey challenges past their time (a used one is deleted when
 * used), identity-provider flows and one-time codes past their time. In small batches, so it never holds many locks at once (the passkey challenges in one statement:
 * at most one per options request of the last minutes).
 */
export async function pruneExpired (db: Database, now: Date, rules: PruneRules) {
  const ended = new Date(now.getTime() - KEEP_ENDED_MS).toISOString()
  const sessions = await deleteInBatches(db, () => sql`
    delete from sessions where id in (
      select id from sessions
      where absolute_expires_at < ${ended}::timestamptz or revoked_at < ${ended}::timestamptz or refresh_expires_at < ${ended}::timestamptz
      limit ${BATCH})`)
  const throttles = await deleteInBatches(db, () => sql`
    delete from login_throttle where key in (
      select key from login_throttle where window_started_at < ${new Date(now.getTime() - rules.attemptWindowMs).toISOString()}::timestamptz limit ${BATCH})`)
  // the rule the sign-in checks, negated: whatever it would refuse
  const mfaChallenges = await deleteInBatches(db, () => sql`
    delete from mfa_challenges where id in (
      select id from mfa_challenges where not (${usableMfaChallenge(now, rules.mfaChallengeMaxFailures)}) limit ${BATCH})`)
  const webauthnChallenges = await deleteExpiredWebauthnChallenges(db, now)
  // identity-provider sign-ins never finished, and one-time codes never exchanged (both deleted when used)
  const at = now.toISOString()
  const oauthFlows = await deleteInBatches(db, () => sql`
    delete from oauth_flows where state_hash in (select state_hash from oauth_flows where expires_at < ${at}::timestamptz limit ${BATCH})`)
  const oauthCodes = await deleteInBatches(db, () => sql`
    delete from oauth_codes where code_hash in (select code_hash from oauth_codes where expires_at < ${at}::timestamptz limit ${BATCH})`)
  const keptFrom = new Date(now.getTime() - rules.auditRetentionDays * 86_400_000).toISOString()
  const auditEvents = await deleteInBatches(db, () => sql`
    delete from audit_events where id in (select id from audit_events where at < ${keptFrom}::timestamptz limit ${BATCH})`)
  // delivered or given-up mail and webhooks, a day after they finished
  const outbox = await deleteInBatches(db, () => sql`
    delete from outbox where id in (select id from outbox where status <> 'pending' and finished_at < ${ended}::timestamptz limit ${BATCH})`)
  return { sessions, throttles, mfaChallenges, webauthnChallenges, oauthFlows, oauthCodes, auditEvents, outbox }
}
