import { and, eq, isNull, ne } from 'drizzle-orm'
import type { Executor } from '../db/client.js'
import { sessions, users } from '../db/schema.js'

export type NewSession = typeof sessions.$inferInsert

export async function insertSession (ex: Executor, row: NewSession): Promise<void> {
  await ex.insert(sessions).values(row)
}

/** One indexed lookup by primary key: the session's state and its user's public fields. */
export async function findSessionWithUser (ex: Executor, sessionId: string, userId: string) {
  const [row] = await ex.select({
    revokedAt: sessions.revokedAt,
    absoluteExpiresAt: sessions.absoluteExpiresAt,
    user: { id: users.id, email: users.email, username: users.username, name: users.name, createdAt: users.createdAt },
  }).from(sessions)
    .innerJoin(users, eq(users.id, sessions.userId))
    .where(and(eq(sessions.id, sessionId), eq(sessions.userId, userId)))
    .limit(1)
  return row
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

export async function touchSession (ex: Executor, sessionId: string, now: Date, meta: { ip: string | null, userAgent: string | null }): Promise<void> {
  await ex.update(sessions).set({ lastUsedAt: now, ip: meta.ip, userAgent: meta.userAgent }).where(eq(sessions.id, sessionId))
}
