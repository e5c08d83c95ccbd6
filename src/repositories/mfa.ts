import { and, eq, gt, isNotNull, isNull, lt, or, sql } from 'drizzle-orm'
import type { Executor } from '../db/client.js'
import { mfaChallenges, totpFactors } from '../db/schema.js'

export type TotpFactor = typeof totpFactors.$inferSelect

/** A new pending secret, replacing a pending one; false when the user's TOTP is already active. */
export async function startTotpEnrolment (ex: Executor, userId: string, sealedSecret: string, now: Date): Promise<boolean> {
  const rows = await ex.insert(totpFactors)
    .values({ userId, secret: sealedSecret, createdAt: now })
    .onConflictDoUpdate({
      target: totpFactors.userId,
      set: { secret: sealedSecret, createdAt: now, lastStep: null, recoveryCodes: [] },
      setWhere: isNull(totpFactors.confirmedAt),
    })
    .returning({ userId: totpFactors.userId })
  return rows.length > 0
}

export async function findTotpFactor (ex: Executor, userId: string): Promise<TotpFactor | undefined> {
  const [row] = await ex.select().from(totpFactors).where(eq(totpFactors.userId, userId)).limit(1)
  return row
}

/**
 * Activates the pending secret that was checked (not one a later enrolment put in its place), with the
 * step of the code that confirmed it and the recovery codes' hashes. False when it is no longer pending.
 */
export async function confirmTotpFactor (ex: Executor, f: { userId: string, sealedSecret: string, step: number, recoveryCodeHashes: string[], now: Date }): Promise<boolean> {
  const rows = await ex.update(totpFactors)
    .set({ confirmedAt: f.now, lastStep: f.step, recoveryCodes: f.recoveryCodeHashes })
    .where(and(eq(totpFactors.userId, f.userId), eq(totpFactors.secret, f.sealedSecret), isNull(totpFactors.confirmedAt)))
    .returning({ userId: totpFactors.userId })
  return rows.length > 0
}

/** Records `step` as used, atomically: false when it (or a later step) was already accepted, or TOTP is not active. */
export async function acceptTotpStep (ex: Executor, userId: string, step: number): Promise<boolean> {
  const rows = await ex.update(totpFactors)
    .set({ lastStep: step })
    .where(and(eq(totpFactors.userId, userId), isNotNull(totpFactors.confirmedAt), or(isNull(totpFactors.lastStep), lt(totpFactors.lastStep, step))))
    .returning({ userId: totpFactors.userId })
  return rows.length > 0
}

/** Spends one recovery code, atomically: the number left, or undefined when it is not an unused code of the user. */
export async function spendRecoveryCode (ex: Executor, userId: string, codeHash: string): Promise<number | undefined> {
  const [row] = await ex.update(totpFactors)
    .set({ recoveryCodes: sql`array_remove(${totpFactors.recoveryCodes}, ${codeHash}::text)` })
    .where(and(eq(totpFactors.userId, userId), isNotNull(totpFactors.confirmedAt), sql`${codeHash}::text = any(${totpFactors.recoveryCodes})`))
    .returning({ left: sql<number>`cardinality(${totpFactors.recoveryCodes})::int` })
  return row?.left
}

/** The new set of recovery codes (their hashes); the old ones are void. False when TOTP is not active. */
export async function replaceRecoveryCodes (ex: Executor, userId: string, hashes: string[]): Promise<boolean> {
  const rows = await ex.update(totpFactors).set({ recoveryCodes: hashes })
    .where(and(eq(totpFactors.userId, userId), isNotNull(totpFactors.confirmedAt)))
    .returning({ userId: totpFactors.userId })
  return rows.length > 0
}

/** Removes the user's TOTP (pending or active) with its recovery codes, and any sign-in waiting for a second factor. */
export async function deleteSecondFactors (ex: Executor, userId: string): Promise<boolean> {
  await ex.delete(mfaChallenges).where(eq(mfaChallenges.userId, userId))
  const rows = await ex.delete(totpFactors).where(eq(totpFactors.userId, userId)).returning({ userId: totpFactors.userId })
  return rows.length > 0
}

export async function insertMfaChallenge (ex: Executor, row: typeof mfaChallenges.$inferInsert): Promise<void> {
  await ex.insert(mfaChallenges).values(row)
}

/** The usable challenge rule: unused, unexpired, fewer than `maxFailures` wrong codes. The prune deletes the rest. */
export const usableMfaChallenge = (now: Date, maxFailures: number) =>
  and(isNull(mfaChallenges.usedAt), gt(mfaChallenges.expiresAt, now), lt(mfaChallenges.failures, maxFailures))

/** Counts a wrong code against a usable challenge; returns the failures so far (undefined if it was no longer usable). */
export async function failMfaChallenge (ex: Executor, id: string, now: Date, maxFailures: number): Promise<number | undefined> {
  const [row] = await ex.update(mfaChallenges).set({ failures: sql`${mfaChallenges.failures} + 1` })
    .where(and(eq(mfaChallenges.id, id), usableMfaChallenge(now, maxFailures)))
    .returning({ failures: mfaChallenges.failures })
  return row?.failures
}

/** Spends a usable challenge, atomically (two requests with one token: one wins). */
export async function spendMfaChallenge (ex: Executor, id: string, now: Date, maxFailures: number): Promise<boolean> {
  const rows = await ex.update(mfaChallenges).set({ usedAt: now })
    .where(and(eq(mfaChallenges.id, id), usableMfaChallenge(now, maxFailures)))
    .returning({ id: mfaChallenges.id })
  return rows.length > 0
}

/** The challenge of a token, whatever its state, and whether it is still usable. */
export async function findMfaChallenge (ex: Executor, tokenHash: string, now: Date, maxFailures: number) {
  const [row] = await ex.select({
    id: mfaChallenges.id,
    userId: mfaChallenges.userId,
    amr: mfaChallenges.amr,
    rememberMe: mfaChallenges.rememberMe,
    usable: sql<boolean>`coalesce(${usableMfaChallenge(now, maxFailures)}, false)`,
  }).from(mfaChallenges).where(eq(mfaChallenges.tokenHash, tokenHash)).limit(1)
  return row
}
