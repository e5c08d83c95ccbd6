import { eq, sql } from 'drizzle-orm'
import type { Executor } from '../db/client.js'
import { refreshTokens, sessions, users } from '../db/schema.js'

export type NewRefreshToken = typeof refreshTokens.$inferInsert

export async function insertRefreshToken (ex: Executor, row: NewRefreshToken): Promise<void> {
  await ex.insert(refreshTokens).values(row)
}

/**
 * The token, its session and user, with the token and session rows locked until the transaction
 * ends: every concurrent refresh of one token (or one session) is serialised here.
 */
export async function lockRefreshToken (ex: Executor, tokenHash: string) {
  const [row] = await ex.select({
    token: {
      id: refreshTokens.id,
      expiresAt: refreshTokens.expiresAt,
      spentAt: refreshTokens.spentAt,
    },
    session: {
      id: sessions.id,
      rememberMe: sessions.rememberMe,
      absoluteExpiresAt: sessions.absoluteExpiresAt,
      revokedAt: sessions.revokedAt,
    },
    user: { id: users.id, email: users.email, username: users.username, name: users.name, createdAt: users.createdAt },
  }).from(refreshTokens)
    .innerJoin(sessions, eq(sessions.id, refreshTokens.sessionId))
    .innerJoin(users, eq(users.id, sessions.userId))
    .where(eq(refreshTokens.tokenHash, tokenHash))
    .limit(1)
    .for('update', { of: [refreshTokens, sessions] })
  return row
}

export async function findChildToken (ex: Executor, parentId: string) {
  const [row] = await ex.select({ id: refreshTokens.id, expiresAt: refreshTokens.expiresAt, spentAt: refreshTokens.spentAt })
    .from(refreshTokens).where(eq(refreshTokens.parentId, parentId)).limit(1)
  return row
}

/** The session a token belongs to, whatever the token's state (for logout). */
export async function findSessionOfToken (ex: Executor, tokenHash: string) {
  const [row] = await ex.select({ sessionId: refreshTokens.sessionId, userId: sessions.userId })
    .from(refreshTokens).innerJoin(sessions, eq(sessions.id, refreshTokens.sessionId))
    .where(eq(refreshTokens.tokenHash, tokenHash)).limit(1)
  return row
}

/**
 * The rotation's writes in one round trip: spend the token, insert its successor, touch the session.
 * Raw fragments take ISO strings (drizzle passes Date objects through only for typed columns).
 */
export async function rotateRefreshToken (ex: Executor, r: {
  spentId: string, sessionId: string, successorId: string, successorHash: string, now: Date, expiresAt: Date, ip: string | null, userAgent: string | null
}): Promise<void> {
  const now = r.now.toISOString()
  await ex.execute(sql`
    with spent as (
      update ${refreshTokens} set spent_at = ${now}::timestamptz where id = ${r.spentId}
    ), touched as (
      update ${sessions} set last_used_at = ${now}::timestamptz, ip = ${r.ip}, user_agent = ${r.userAgent} where id = ${r.sessionId}
    )
    insert into ${refreshTokens} (id, session_id, token_hash, parent_id, created_at, expires_at)
    values (${r.successorId}, ${r.sessionId}, ${r.successorHash}, ${r.spentId}, ${now}::timestamptz, ${r.expiresAt.toISOString()}::timestamptz)`)
}
