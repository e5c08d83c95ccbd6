import { and, desc, eq, exists, gt, isNull, ne, sql } from 'drizzle-orm'
import type { Database, Executor } from '../db/client.js'
import { refreshTokens, sessions, users } from '../db/schema.js'

export type NewSession = typeof sessions.$inferInsert

export async function insertSession (ex: Executor, row: NewSession): Promise<void> {
  await ex.insert(sessions).values(row)
}

function sessionWithUserQuery (db: Database) {
  return db.select({
    revokedAt: sessions.revokedAt,
    absoluteExpiresAt: sessions.absoluteExpiresAt,
    user: {
      id: users.id, email: users.email, username: users.username, name: users.name, createdAt: users.createdAt, role: users.role, emailVerifiedAt: users.emailVerifiedAt,
    },
  }).from(sessions)
    .innerJoin(users, eq(users.id, sessions.userId))
    .where(and(eq(sessions.id, sql.placeholder('sid')), eq(sessions.userId, sql.placeholder('uid'))))
    .limit(1)
    .prepare('find_session_with_user')
}
// Built once per database: this query runs on every authenticated request.
const prepared = new WeakMap<Database, ReturnType<typeof sessionWithUserQuery>>()

/** One indexed lookup by primary key: the session's state and its user's public fields. */
export async function findSessionWithUser (db: Database, sessionId: string, userId: string) {
  let query = prepared.get(db)
  if (!query) prepared.set(db, query = sessionWithUserQuery(db))
  const [row] = await query.execute({ sid: sessionId, uid: userId })
  return row
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
