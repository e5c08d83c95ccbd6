import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Redis } from 'ioredis'

declare module 'fastify' {
  interface FastifyInstance {
    /** Shared counters for every instance; null without REDIS_URL (then counters live in Postgres and memory). */
    redis: Redis | null
  }
}

/**
 * Commands fail at once while Redis is away (no offline queue), so a request never waits on it;
 * the client reconnects by itself.
 */
async function redisPlugin (app: FastifyInstance) {
  const url = app.config.redisUrl
  if (!url) {
    app.decorate('redis', null)
    return
  }
  const { Redis: RedisClient } = await import('ioredis')
  const redis = new RedisClient(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    retryStrategy: times => Math.min(times * 250, 2000),
  })
  let healthy = true
  redis.on('error', err => {
    if (healthy) app.log.warn({ err: { message: err.message } }, 'redis unavailable: sign-in answers 503 until it returns')
    healthy = false
  })
  redis.on('ready', () => {
    if (!healthy) app.log.info('redis available again')
    healthy = true
  })
  await new Promise<void>(resolve => {
    const done = () => { clearTimeout(timer); resolve() }
    const timer = setTimeout(done, 3000)
    redis.once('ready', done)
  })
  app.decorate('redis', redis)
  app.addHook('onClose', async () => { redis.disconnect() })
}

export default fp(redisPlugin, { name: 'redis', dependencies: ['config'] })
