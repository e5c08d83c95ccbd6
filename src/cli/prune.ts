import { LONGEST_WINDOW_MS } from '../auth/attempt-throttle.js'
import { loadConfig } from '../config.js'
import { pruneExpired } from '../repositories/prune.js'
import { openDatabase } from '../db/client.js'

// `npm run db:prune`: deletes sessions ended over a day ago and stale attempt counts.
const config = loadConfig(process.env)
const handle = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir, max: 1 })
try {
  await handle.migrate()
  console.log(JSON.stringify({ removed: await pruneExpired(handle.db, new Date(), LONGEST_WINDOW_MS) }))
} finally {
  await handle.close()
}
