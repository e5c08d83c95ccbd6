import { loadConfig } from '../config.js'
import { openDatabase } from '../db/client.js'

// `npm run db:migrate`: applies the committed migrations to DATABASE_URL (or the embedded database).
const config = loadConfig(process.env)
const handle = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir })
try {
  await handle.migrate()
  console.log(`migrations applied (${handle.kind})`)
} finally {
  await handle.close()
}
