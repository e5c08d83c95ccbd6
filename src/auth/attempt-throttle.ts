import type { Redis } from 'ioredis'
import type { Database } from '../db/client.js'
import { ApiError } from '../errors.js'
import { clearAttempts, reserveAttempt } from '../repositories/attempt-counts.js'

export const LOGIN_WINDOW_MS = 15 * 60_000
/** Password reset requests per address are counted per hour. */
export const FORGOT_WINDOW_MS = 60 * 60_000
/** Counts older than the longest window are stale and may be purged. */
export const LONGEST_WINDOW_MS = Math.max(LOGIN_WINDOW_MS, FORGOT_WINDOW_MS)

/**
 * Attempts per key in a window, where every instance sees them: failed sign-ins per account (and the
 * routes that check the current password), reset requests per address. `reserve` counts an attempt
 * before the work it guards, atomically, so parallel attempts cannot exceed the limit; a success may clear it.
 */
export interface AttemptThrottle {
  reserve (key: string, now: Date): Promise<{ allowed: true } | { allowed: false, retryAfterSeconds: number }>
  clear (key: string): Promise<void>
  /** The counts are rows of login_throttle in the app's database, so a statement there may clear one. */
  readonly inDatabase: boolean
}

/** The count of one account: its failed sign-ins, current-password checks and second-factor codes. */
export const accountKey = (userId: string) => `user:${userId}`

const retryAfter = (ms: number) => Math.max(1, Math.ceil(ms / 1000))

export function databaseAttemptThrottle (db: Database, limit: number, windowMs = LOGIN_WINDOW_MS): AttemptThrottle {
  return {
    async reserve (key, now) {
      const gate = await reserveAttempt(db, key, now, windowMs, limit)
      return gate.allowed ? gate : { allowed: false, retryAfterSeconds: retryAfter(gate.windowStartedAt.getTime() + windowMs - now.getTime()) }
    },
    clear: key => clearAttempts(db, key),
    inDatabase: true,
  }
}

// Count and window start in one atomic step; the key expires with its window.
const RESERVE = `
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return {0, redis.call('PTTL', KEYS[1])} end
n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return {1, redis.call('PTTL', KEYS[1])}`

/** Fails closed: without Redis no attempt is allowed (503), since the limit could not be enforced. */
export function redisAttemptThrottle (redis: Redis, prefix: string, limit: number, windowMs = LOGIN_WINDOW_MS): AttemptThrottle {
  const unavailable = (cause: unknown) => new ApiError('service_unavailable', 'Sign-in is briefly unavailable; try again shortly', { cause, headers: { 'retry-after': 5 } })
  return {
    async reserve (key) {
      let result: [number, number]
      try {
        result = await redis.eval(RESERVE, 1, `${prefix}login:${key}`, limit, windowMs) as [number, number]
      } catch (err) {
        throw unavailable(err)
      }
      return result[0] === 1 ? { allowed: true } : { allowed: false, retryAfterSeconds: retryAfter(result[1]) }
    },
    async clear (key) {
      try {
        await redis.del(`${prefix}login:${key}`)
      } catch (err) {
        throw unavailable(err)
      }
    },
    inDatabase: false,
  }
}
