import { and, eq, gt, inArray, isNull, sql } from 'drizzle-orm'
import type { Executor } from '../db/client.js'
import { emailTokens, users, type EmailTokenPurpose } from '../db/schema.js'

export type NewEmailToken = typeof emailTokens.$inferInsert

export async function insertEmailToken (ex: Executor, row: NewEmailToken): Promise<void> {
  await ex.insert(emailTokens).values(row)
}

/** No token of the same user and purpose was requested after this one. */
const newest = sql`not exists (select 1 from email_tokens newer where newer.user_id = ${emailTokens.userId}
  and newer.purpose = ${emailTokens.purpose} and newer.requested_at > ${emailTokens.requestedAt})`

/** Not used, not expired, and the newest of its user and purpose. */
const usable = (now: Date) => and(isNull(emailTokens.usedAt), gt(emailTokens.expiresAt, now), newest)

/**
 * A usable token and its user, the token row locked until the transaction ends: not used, not
 * expired, and the newest of its user and purpose (a newer request voids older tokens).
 */
export async function lockUsableEmailToken (ex: Executor, tokenHash: string, purpose: EmailTokenPurpose, now: Date) {
  const [row] = await ex.select({ token: { id: emailTokens.id, newEmail: emailTokens.newEmail }, user: users })
    .from(emailTokens)
    .innerJoin(users, eq(users.id, emailTokens.userId))
    .where(and(eq(emailTokens.tokenHash, tokenHash), eq(emailTokens.purpose, purpose), usable(now)))
    .limit(1)
    .for('update', { of: emailTokens })
  return row
}

/** Whether a token could still be used (checked again before a retry sends its link). */
export async function isEmailTokenUsable (ex: Executor, id: string, now: Date): Promise<boolean> {
  const [row] = await ex.select({ id: emailTokens.id }).from(emailTokens)
    .where(and(eq(emailTokens.id, id), usable(now)))
  return row !== undefined
}

export async function markEmailTokenUsed (ex: Executor, id: string, now: Date): Promise<void> {
  await ex.update(emailTokens).set({ usedAt: now }).where(eq(emailTokens.id, id))
}

/** Spends every unused link of a user but the given purposes' (an email change voids the links sent to the old address). */
export async function voidEmailTokens (ex: Executor, userId: string, purposes: EmailTokenPurpose[], now: Date): Promise<void> {
  await ex.update(emailTokens).set({ usedAt: now })
    .where(and(eq(emailTokens.userId, userId), isNull(emailTokens.usedAt), inArray(emailTokens.purpose, purposes)))
}
