import { eq, sql } from 'drizzle-orm'
import type { Executor } from '../db/client.js'
import { loginThrottle } from '../db/schema.js'

/**
 * Counts one attempt against `key` unless the window's limit is reached, atomically (one upsert), so
 * parallel attempts can never exceed it. Returns null when refused, with the window's start to derive
 * Retry-After from.
 */
export async function reserveAttempt (ex: Executor, key: string, now: Date, windowMs: number, limit: number) {
  // raw fragments take ISO strings: drizzle passes Date objects through only for typed columns
  const windowFloor = new Date(now.getTime() - windowMs).toISOString()
  const expired = sql`${loginThrottle.windowStartedAt} <= ${windowFloor}::timestamptz`
  const [row] = await ex.insert(loginThrottle)
    .values({ key, failures: 1, windowStartedAt: now })
    .onConflictDoUpdate({
      target: loginThrottle.key,
      set: {
        failures: sql`case when ${expired} then 1 else ${loginThrottle.failures} + 1 end`,
        windowStartedAt: sql`case when ${expired} then ${now.toISOString()}::timestamptz else ${loginThrottle.windowStartedAt} end`,
      },
      setWhere: sql`${expired} or ${loginThrottle.failures} < ${limit}`,
    })
    .returning({ failures: loginThrottle.failures })
  if (row) return { allowed: true as const }
  const [locked] = await ex.select({ windowStartedAt: loginThrottle.windowStartedAt }).from(loginThrottle).where(eq(loginThrottle.key, key))
  return { allowed: false as const, windowStartedAt: locked?.windowStartedAt ?? now }
}

/** Forgets the attempts counted so far (a successful sign-in). */
export async function clearAttempts (ex: Executor, key: string): Promise<void> {
  await ex.delete(loginThrottle).where(eq(loginThrottle.key, key))
}
