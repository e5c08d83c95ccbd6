import { eq } from 'drizzle-orm'
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

export async function markRefreshTokenSpent (ex: Executor, id: string, now: Date): Promise<void> {
  await ex.update(refreshTokens).set({ spentAt: now }).where(eq(refreshTokens.id, id))
}

/** The session a token belongs to, whatever the token's state (for logout). */
export async function findSessionOfToken (ex: Executor, tokenHash: string) {
  const [row] = await ex.select({ sessionId: refreshTokens.sessionId, userId: sessions.userId })
    .from(refreshTokens).innerJoin(sessions, eq(sessions.id, refreshTokens.sessionId))
    .where(eq(refreshTokens.tokenHash, tokenHash)).limit(1)
  return row
}
