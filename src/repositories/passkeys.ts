import { and, asc, eq, gt, sql } from 'drizzle-orm'
import type { Executor } from '../db/client.js'
import { passkeys, users, webauthnChallenges, type WebauthnPurpose } from '../db/schema.js'

export type Passkey = typeof passkeys.$inferSelect

/** The user's WebAuthn handle, made on first use (`candidate`, random) and the same ever after. */
export async function passkeyHandle (ex: Executor, userId: string, candidate: string): Promise<string | undefined> {
  const [row] = await ex.update(users)
    .set({ passkeyHandle: sql`coalesce(${users.passkeyHandle}, ${candidate})` })
    .where(eq(users.id, userId))
    .returning({ handle: users.passkeyHandle })
  return row?.handle ?? undefined
}

export async function insertWebauthnChallenge (ex: Executor, row: typeof webauthnChallenges.$inferInsert): Promise<void> {
  await ex.insert(webauthnChallenges).values(row)
}

/**
 * Spends a challenge of this purpose (and user, for a registration): deleted whatever its state, so it
 * works once; true only when it was issued for this and has not expired.
 */
export async function spendWebauthnChallenge (ex: Executor, challenge: string, purpose: WebauthnPurpose, userId: string | null, now: Date): Promise<boolean> {
  const [row] = await ex.delete(webauthnChallenges).where(eq(webauthnChallenges.challenge, challenge))
    .returning({ purpose: webauthnChallenges.purpose, userId: webauthnChallenges.userId, expiresAt: webauthnChallenges.expiresAt })
  return !!row && row.purpose === purpose && row.userId === userId && row.expiresAt.getTime() > now.getTime()
}

export async function insertPasskey (ex: Executor, row: typeof passkeys.$inferInsert): Promise<Passkey> {
  const [passkey] = await ex.insert(passkeys).values(row).returning()
  return passkey!
}

export async function listPasskeys (ex: Executor, userId: string): Promise<Passkey[]> {
  return ex.select().from(passkeys).where(eq(passkeys.userId, userId)).orderBy(asc(passkeys.createdAt), asc(passkeys.id))
}

export async function findPasskeyByCredentialId (ex: Executor, credentialId: string): Promise<Passkey | undefined> {
  const [row] = await ex.select().from(passkeys).where(eq(passkeys.credentialId, credentialId)).limit(1)
  return row
}

/**
 * Records a sign-in with a passkey: its new counter (only if it moved forward, so two sign-ins with one
 * assertion cannot both pass), backup state and time. False when the counter did not move forward.
 */
export async function recordPasskeyUse (ex: Executor, id: string, counter: number, previous: number, backedUp: boolean, now: Date): Promise<boolean> {
  const rows = await ex.update(passkeys).set({ counter, backedUp, lastUsedAt: now })
    .where(and(eq(passkeys.id, id), eq(passkeys.counter, previous)))
    .returning({ id: passkeys.id })
  return rows.length > 0
}

export async function renamePasskey (ex: Executor, id: string, userId: string, name: string): Promise<Passkey | undefined> {
  const [row] = await ex.update(passkeys).set({ name }).where(and(eq(passkeys.id, id), eq(passkeys.userId, userId))).returning()
  return row
}

export async function deletePasskey (ex: Executor, id: string, userId: string): Promise<boolean> {
  const rows = await ex.delete(passkeys).where(and(eq(passkeys.id, id), eq(passkeys.userId, userId))).returning({ id: passkeys.id })
  return rows.length > 0
}

/** Challenges past their time (the browser never came back). */
export async function deleteExpiredWebauthnChallenges (ex: Executor, now: Date): Promise<number> {
  const rows = await ex.delete(webauthnChallenges).where(gt(sql`${now.toISOString()}::timestamptz`, webauthnChallenges.expiresAt)).returning({ c: webauthnChallenges.challenge })
  return rows.length
}
