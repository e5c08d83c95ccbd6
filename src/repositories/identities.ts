import { and, asc, eq, sql } from 'drizzle-orm'
import type { Executor } from '../db/client.js'
import { identities, oauthCodes, oauthFlows, users, type Identity } from '../db/schema.js'

export type OauthFlow = typeof oauthFlows.$inferSelect
export type OauthCode = typeof oauthCodes.$inferSelect

export async function insertOauthFlow (ex: Executor, row: OauthFlow): Promise<void> {
  await ex.insert(oauthFlows).values(row)
}

/** Spends a flow whatever its state (deleted, so a state works once) and returns it for the caller to judge. */
export async function takeOauthFlow (ex: Executor, stateHash: string): Promise<OauthFlow | undefined> {
  const [row] = await ex.delete(oauthFlows).where(eq(oauthFlows.stateHash, stateHash)).returning()
  return row
}

export async function insertOauthCode (ex: Executor, row: OauthCode): Promise<void> {
  await ex.insert(oauthCodes).values(row)
}

/** Spends a one-time code whatever its state (deleted: a second exchange finds nothing). */
export async function takeOauthCode (ex: Executor, codeHash: string): Promise<OauthCode | undefined> {
  const [row] = await ex.delete(oauthCodes).where(eq(oauthCodes.codeHash, codeHash)).returning()
  return row
}

export async function findIdentity (ex: Executor, provider: string, subject: string): Promise<Identity | undefined> {
  const [row] = await ex.select().from(identities).where(and(eq(identities.provider, provider), eq(identities.subject, subject))).limit(1)
  return row
}

/** Links an identity; undefined when (provider, subject) is linked already (to anyone). */
export async function insertIdentity (ex: Executor, row: typeof identities.$inferInsert): Promise<Identity | undefined> {
  const [identity] = await ex.insert(identities).values(row).onConflictDoNothing({ target: [identities.provider, identities.subject] }).returning()
  return identity
}

export async function touchIdentity (ex: Executor, id: string, now: Date): Promise<void> {
  await ex.update(identities).set({ lastUsedAt: now }).where(eq(identities.id, id))
}

export async function listIdentities (ex: Executor, userId: string): Promise<Identity[]> {
  return ex.select().from(identities).where(eq(identities.userId, userId)).orderBy(asc(identities.createdAt), asc(identities.id))
}

export async function deleteIdentity (ex: Executor, userId: string, identityId: string): Promise<boolean> {
  return (await ex.delete(identities).where(and(eq(identities.id, identityId), eq(identities.userId, userId))).returning({ id: identities.id })).length > 0
}

/**
 * The user's ways to sign in (a password, identities, passkeys), the user row locked until the
 * transaction ends: two removals at once cannot both pass a "not the last one" check.
 */
export async function lockSignInMethods (ex: Executor, userId: string): Promise<{ password: boolean, identityIds: string[], passkeyIds: string[] } | undefined> {
  const [row] = await ex.select({
    password: sql<boolean>`${users.passwordHash} is not null`,
    identityIds: sql<string[]>`array(select i.id::text from identities i where i.user_id = ${userId}::uuid)`,
    passkeyIds: sql<string[]>`array(select p.id::text from passkeys p where p.user_id = ${userId}::uuid)`,
  }).from(users).where(eq(users.id, userId)).for('update')
  return row
}

/** Whether removing one identity or passkey would leave the account no way to sign in. */
export function isLastSignInMethod (methods: { password: boolean, identityIds: string[], passkeyIds: string[] }, removing: string): boolean {
  if (methods.password) return false
  return [...methods.identityIds, ...methods.passkeyIds].filter(id => id !== removing).length === 0
}

/** Unlinks the user's identities whose email nobody vouched for; returns their ids. */
export async function deleteUnvouchedIdentities (ex: Executor, userId: string): Promise<string[]> {
  const rows = await ex.delete(identities).where(and(eq(identities.userId, userId), eq(identities.emailVerified, false))).returning({ id: identities.id })
  return rows.map(r => r.id)
}
