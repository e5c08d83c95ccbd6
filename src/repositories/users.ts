import { and, asc, eq, gt, like, sql, type SQL } from 'drizzle-orm'
import { fromEpochMs, pageOf, type Executor } from '../db/client.js'
import { users, type Role, type User } from '../db/schema.js'

export type NewUser = typeof users.$inferInsert

export async function insertUser (ex: Executor, row: NewUser): Promise<User> {
  const [user] = await ex.insert(users).values(row).returning()
  return user!
}

export async function findUserById (ex: Executor, id: string): Promise<User | undefined> {
  const [user] = await ex.select().from(users).where(eq(users.id, id)).limit(1)
  return user
}

/** The user, its row held FOR SHARE until the transaction ends (a change to the account waits for it, or is waited for). */
export async function findUserForShare (ex: Executor, id: string): Promise<User | undefined> {
  const [user] = await ex.select().from(users).where(eq(users.id, id)).limit(1).for('share')
  return user
}

export async function findUserByEmail (ex: Executor, email: string): Promise<User | undefined> {
  const [user] = await ex.select().from(users).where(eq(users.email, email)).limit(1)
  return user
}

/** Case-insensitive, served by the unique index on lower(username). */
export async function findUserByUsername (ex: Executor, username: string): Promise<User | undefined> {
  const [user] = await ex.select().from(users).where(sql`lower(${users.username}) = lower(${username})`).limit(1)
  return user
}

export async function updateUser (ex: Executor, id: string, changes: Partial<Pick<NewUser, 'name' | 'username' | 'email' | 'passwordHash' | 'role' | 'emailVerifiedAt' | 'suspendedAt' | 'suspendedUntil' | 'suspendedReason' | 'updatedAt'>>): Promise<User | undefined> {
  const [user] = await ex.update(users).set(changes).where(eq(users.id, id)).returning()
  return user
}

/**
 * Deletes the user; sessions go with it (ON DELETE CASCADE). A refresh locks only its session row, so
 * one running at the same moment waits for the delete and then finds no session.
 */
export async function deleteUser (ex: Executor, id: string): Promise<boolean> {
  const deleted = await ex.delete(users).where(eq(users.id, id)).returning({ id: users.id })
  return deleted.length > 0
}

const escapeLike = (s: string) => s.replace(/[\\%_]/g, c => `\\${c}`)

/** A page of users ordered by id (creation order: ids are UUIDv7), after `cursor`, by email prefix. */
export async function listUsers (ex: Executor, options: { limit: number, cursor?: string | undefined, emailPrefix?: string | undefined }) {
  const filters: (SQL | undefined)[] = [
    options.cursor ? gt(users.id, options.cursor) : undefined,
    // emails are stored lower-cased, so a lower-cased prefix matches regardless of case
    options.emailPrefix ? like(users.email, `${escapeLike(options.emailPrefix.toLowerCase())}%`) : undefined,
  ]
  const page = await ex.select({
    id: users.id,
    email: users.email,
    username: users.username,
    name: users.name,
    role: users.role,
    emailVerifiedAt: users.emailVerifiedAt,
    createdAt: users.createdAt,
    suspendedAt: users.suspendedAt,
    suspendedUntil: users.suspendedUntil,
  }).from(users).where(and(...filters)).orderBy(asc(users.id)).limit(options.limit + 1)
  return pageOf(page, options.limit)
}

export async function setRoleByEmail (ex: Executor, email: string, role: Role, now: Date): Promise<User | undefined> {
  const [user] = await ex.update(users).set({ role, updatedAt: now }).where(eq(users.email, email)).returning()
  return user
}

/** A user's columns as the raw queries select them: `u.id as user_id, u.email, u.username, u.name, u.role`, times as epoch ms. */
export interface UserEpochColumns {
  user_id: string
  email: string
  username: string | null
  name: string | null
  role: Role
  email_verified_ms: number | null
  user_created_ms: number
}

export const USER_EPOCH_COLUMNS = `u.id as user_id, u.email, u.username, u.name, u.role,
  extract(epoch from u.email_verified_at)::float8 * 1000 as email_verified_ms,
  extract(epoch from u.created_at)::float8 * 1000 as user_created_ms`

export const userFromEpochColumns = (row: UserEpochColumns) => ({
  id: row.user_id, email: row.email, username: row.username, name: row.name, role: row.role, emailVerifiedAt: fromEpochMs(row.email_verified_ms), createdAt: fromEpochMs(row.user_created_ms)!,
})
