import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { audit } from '../audit.js'
import { ApiError } from '../errors.js'

/**
 * Per-client-IP limits. The default applies to every route (RATE_LIMIT_IP a minute); /register and
 * /refresh set their own in their route config, each counted separately; /login and /login/mfa share one
 * limiter (routes/auth.ts).
 * request.ip is the socket address unless TRUST_PROXY names the proxies.
 */
async function rateLimitPlugin (app: FastifyInstance) {
  await app.register(rateLimit, {
    global: true,
    max: app.config.rateLimit.ip,
    timeWindow: 60_000,
    enableDraftSpec: true,
    // with REDIS_URL every instance shares the counters; while Redis is away only /login refuses (fail closed)
    ...(app.redis ? { redis: app.redis, nameSpace: `${app.config.redisKeyPrefix}rl:` } : {}),
    skipOnError: true,
    onExceeded: request => audit(request, 'rate_limited', { route: request.routeOptions.url }),
    errorResponseBuilder: (_request, context) =>
      new ApiError('too_many_requests', `Too many requests from this address; retry in ${context.after}`),
  })
}

export default fp(rateLimitPlugin, { name: 'rate-limit', dependencies: ['config', 'redis'] })
