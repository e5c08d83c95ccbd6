import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { LONGEST_WINDOW_MS } from '../auth/attempt-throttle.js'
import { pruneExpired } from '../repositories/prune.js'

/** Purges ended sessions and stale attempt counts every PRUNE_INTERVAL_SECONDS, off the request path. */
async function prunePlugin (app: FastifyInstance) {
  const every = app.config.pruneIntervalSeconds
  if (every === 0) return
  let running = false
  const run = async () => {
    if (running) return
    running = true
    try {
      const removed = await pruneExpired(app.db, new Date(app.clock()), LONGEST_WINDOW_MS)
      app.log.info({ removed }, 'pruned ended sessions and stale attempt counts')
    } catch (err) {
      app.log.warn({ err: { message: (err as Error).message } }, 'prune failed; will try again')
    } finally {
      running = false
    }
  }
  const timer = setInterval(run, every * 1000)
  timer.unref()
  app.addHook('onClose', async () => { clearInterval(timer) })
}

export default fp(prunePlugin, { name: 'prune', dependencies: ['config', 'db'] })
