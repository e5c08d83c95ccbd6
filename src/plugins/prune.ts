import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { LONGEST_WINDOW_MS } from '../auth/attempt-throttle.js'
import { MFA_CHALLENGE_MAX_FAILURES } from '../auth/mfa.js'
import { pruneExpired } from '../repositories/prune.js'

/** Purges ended sessions, stale attempt counts, unusable mfaTokens and expired passkey challenges every PRUNE_INTERVAL_SECONDS, off the request path. */
async function prunePlugin (app: FastifyInstance) {
  const every = app.config.pruneIntervalSeconds
  if (every === 0) return
  let running = false
  const run = async () => {
    if (running) return
    running = true
    try {
      const removed = await pruneExpired(app.db, new Date(app.clock()), { attemptWindowMs: LONGEST_WINDOW_MS, mfaChallengeMaxFailures: MFA_CHALLENGE_MAX_FAILURES, auditRetentionDays: app.config.auditRetentionDays })
      app.log.info({ removed }, 'pruned ended sessions, stale attempt counts, unusable mfaTokens and expired passkey challenges')
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
