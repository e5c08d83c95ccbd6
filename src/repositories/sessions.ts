import { and, desc, eq, exists, gt, isNull, ne, sql } from 'drizzle-orm'
import { fromEpochMs as date, statement, type Database, type Executor } from '../db/client.js'
import { refreshTokens, sessions } from '../db/schema.js'
import { USER_EPOCH_COLUMNS, userFromEpochColumns, type UserEpochColumns } from './users.js'

export type NewSession = typeof sessions.$inferInsert

/**
 * A new session and its first refresh token in one statement (one round trip, atomic without a
 * transaction). `clearThrottleKey` also forgets that key's failed sign-ins (login_throttle) in the same
 * statement, when the count is kept in this database.
 */
export async function openSession (ex: Executor, s: NewSession & { absoluteExpiresAt: Date, createdAt: Date }, token: { id: string, tokenHash: string, expiresAt: Date }, clearThrottleKey?: string): Promise<void> {
  const createdAt = s.createdAt.toISOString()
  await ex.execute(sql`
    with ${clearThrottleKey === undefined ? sql`` : sql`cleared as (delete from login_throttle where key = ${clearThrottleKey}),`}
    session as (
      insert into sessions (id, user_id, remember_me, created_at, last_used_at, absolute_expires_at, user_agent, ip)
      values (${s.id}, ${s.userId}, ${s.rememberMe}, ${createdAt}::timestamptz, ${createdAt}::timestamptz,
              ${s.absoluteExpiresAt.toISOString()}::timestamptz, ${s.userAgent ?? null}, ${s.ip ?? null})
      returning id
    )
    insert into refresh_tokens (id, session_id, token_hash, parent_id, created_at, expires_at)
    select ${token.id}, session.id, ${token.tokenHash}, null, ${createdAt}::timestamptz, ${token.expiresAt.toISOString()}::timestamptz
    from session`)
}

interface SessionWithUserRow extends UserEpochColumns {
  revoked_ms: number | null
  absolute_expires_ms: number
}

// Times as epoch milliseconds, the same from either driver.
const sessionWithUser = statement<SessionWithUserRow>(`
  select extract(epoch from s.revoked_at)::float8 * 1000 as revoked_ms,
         extract(epoch from s.absolute_expires_at)::float8 * 1000 as absolute_expires_ms,
         ${USER_EPOCH_COLUMNS}
  from sessions s join users u on u.id = s.user_id
  where s.id = $1 and s.user_id = $2
  limit 1`)

/**
 * One indexed lookup by primary key: the session's state and its user's public fields. It runs on every
 * authenticated request, so it is one prepared statement sent straight to the driver: the query builder
 * and its row mapping were ~10 % of the time of a /me in the profile.
 */
export async function findSessionWithUser (db: Database, sessionId: string, userId: string) {
  const [row] = await sessionWithUser(db, [sessionId, userId])
  if (!row) return undefined
  return { revokedAt: date(row.revoked_ms), absoluteExpiresAt: date(row.absolute_expires_ms)!, user: userFromEpochColumns(row) }
}

/** A session is live while not revoked, within its absolute lifetime, and holding an unspent, unexpired refresh token. */
const live = (ex: Executor, now: Date) => and(
  isNull(sessions.revokedAt),
  gt(sessions.absoluteExpiresAt, now),
  exists(ex.select({ one: sql`1` }).from(refreshTokens)
    .where(and(eq(refreshTokens.sessionId, sessions.id), isNull(refreshTokens.spentAt), gt(refreshTokens.expiresAt, now)))),
)

/** The user's live sessions, newest first; `expiresAt` is when the live refresh token runs out. */
export async function listLiveSessions (ex: Executor, userId: string, now: Date) {
  return ex.select({
    id: sessions.id,
    createdAt: sessions.createdAt,
    lastUsedAt: sessions.lastUsedAt,
    rememberMe: sessions.rememberMe,
    userAgent: sessions.userAgent,
    ip: sessions.ip,
    expiresAt: sql<Date>`max(${refreshTokens.expiresAt})`.mapWith(refreshTokens.expiresAt),
  }).from(sessions)
    .innerJoin(refreshTokens, eq(refreshTokens.sessionId, sessions.id))
    .where(and(eq(sessions.userId, userId), isNull(sessions.revokedAt), gt(sessions.absoluteExpiresAt, now), isNull(refreshTokens.spentAt), gt(refreshTokens.expiresAt, now)))
    .groupBy(sessions.id)
    .orderBy(desc(sessions.createdAt), desc(sessions.id))
}

/** Revokes one live session of this user; false when there is none by that id (unknown, ended, or someone else's). */
export async function revokeLiveSession (ex: Executor, sessionId: string, userId: string, reason: string, now: Date): Promise<boolean> {
  const rows = await ex.update(sessions).set({ revokedAt: now, revokedReason: reason })
    .where(and(eq(sessions.id, sessionId), eq(sessions.userId, userId), live(ex, now)))
    .returning({ id: sessions.id })
  return rows.length > 0
}

export async function revokeSession (ex: Executor, sessionId: string, reason: string, now: Date): Promise<number> {
  const rows = await ex.update(sessions).set({ revokedAt: now, revokedReason: reason })
    .where(and(eq(sessions.id, sessionId), isNull(sessions.revokedAt)))
    .returning({ id: sessions.id })
  return rows.length
}

/** Revokes every live session of a user, or every one but `exceptId`. */
export async function revokeUserSessions (ex: Executor, userId: string, reason: string, now: Date, exceptId?: string): Promise<number> {
  const rows = await ex.update(sessions).set({ revokedAt: now, revokedReason: reason })
    .where(and(eq(sessions.userId, userId), isNull(sessions.revokedAt), exceptId ? ne(sessions.id, exceptId) : undefined))
    .returning({ id: sessions.id })
  return rows.length
}
