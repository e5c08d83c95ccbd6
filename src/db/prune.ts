import { LONGEST_WINDOW_MS } from '../auth/login-throttle.js'
import { loadConfig } from '../config.js'
import { pruneExpired } from '../repositories/prune.js'
import { openDatabase } from './client.js'

// `npm run db:prune`: deletes expired and revoked sessions, spent tokens past expiry, stale login counts.
const config = loadConfig(process.env)
const handle = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir, max: 1 })
try {
  await handle.migrate()
  console.log(JSON.stringify({ removed: await pruneExpired(handle.db, new Date(), LONGEST_WINDOW_MS) }))
} finally {
  await handle.close()
}
