import { eq, sql } from 'drizzle-orm'
import type { Executor } from '../db/client.js'
import { users, type User } from '../db/schema.js'

export type NewUser = typeof users.$inferInsert

export async function insertUser (ex: Executor, row: NewUser): Promise<User> {
  const [user] = await ex.insert(users).values(row).returning()
  return user!
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
