import { ApiError } from '../errors.js'

/**
 * A 429 carrying the same headers @fastify/rate-limit sends (Retry-After and the IETF draft's
 * RateLimit-*), so the per-account limit looks like every other limit.
 */
export function throttled (retryAfterSeconds: number, limit: number, detail: string): ApiError {
  return new ApiError('too_many_requests', detail, {
    headers: {
      'retry-after': retryAfterSeconds,
      'ratelimit-limit': limit,
      'ratelimit-remaining': 0,
      'ratelimit-reset': retryAfterSeconds,
    },
  })
}
