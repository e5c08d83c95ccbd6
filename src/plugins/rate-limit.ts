import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { audit, meta } from '../audit.js'
import { ApiError } from '../errors.js'

/**
 * Per-client-IP limits. The default applies to every route (RATE_LIMIT_IP a minute); /register and
 * /refresh set their own in their route config, each counted separately; /login and /login/mfa share one
 * limiter (routes/auth.ts).
 * request.ip is the socket address unless TRUST_PROXY names the proxies.
 */
async function rateLimitPlugin (app: FastifyInstance) {
  // A lock goes into the security history once per client and minute, not once per refused request (a
  // flood would otherwise write a row per request).
  const recorded = new Map<string, number>()
  function recordLock (request: FastifyRequest, key: string) {
    const now = app.clock()
    if ((recorded.get(key) ?? 0) > now) return
    if (recorded.size > 10_000) recorded.clear()
    recorded.set(key, now + 60_000)
    request.server.events.record(request.server.db, 'rate_limited', null, meta(request), { scope: 'ip', route: request.routeOptions.url ?? null })
      .catch((err: unknown) => request.log.warn({ err: { message: (err as Error).message } }, 'the rate-limit lock was not recorded'))
  }

  await app.register(rateLimit, {
    global: true,
    max: app.config.rateLimit.ip,
    timeWindow: 60_000,
    enableDraftSpec: true,
    // with REDIS_URL every instance shares the counters; while Redis is away only /login refuses (fail closed)
    ...(app.redis ? { redis: app.redis, nameSpace: `${app.config.redisKeyPrefix}rl:` } : {}),
    skipOnError: true,
    onExceeded: (request, key) => {
      audit(request, 'rate_limited', { route: request.routeOptions.url })
      recordLock(request, key)
    },
    errorResponseBuilder: (_request, context) =>
      new ApiError('too_many_requests', `Too many requests from this address; retry in ${context.after}`),
  })
}

export default fp(rateLimitPlugin, { name: 'rate-limit', dependencies: ['config', 'redis'] })
