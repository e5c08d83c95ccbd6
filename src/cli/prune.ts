import { LONGEST_WINDOW_MS } from '../auth/attempt-throttle.js'
import { MFA_CHALLENGE_MAX_FAILURES } from '../auth/mfa.js'
import { loadConfig } from '../config.js'
import { pruneExpired } from '../repositories/prune.js'
import { openDatabase } from '../db/client.js'

// `npm run db:prune`: deletes sessions ended over a day ago, stale attempt counts, spent, expired or voided mfaTokens and expired passkey challenges.
const config = loadConfig(process.env)
const handle = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir, max: 1 })
try {
  await handle.migrate()
  const removed = await pruneExpired(handle.db, new Date(), { attemptWindowMs: LONGEST_WINDOW_MS, mfaChallengeMaxFailures: MFA_CHALLENGE_MAX_FAILURES, auditRetentionDays: config.auditRetentionDays })
  console.log(JSON.stringify({ removed }))
} finally {
  await handle.close()
}
