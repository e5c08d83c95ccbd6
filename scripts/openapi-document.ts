import { randomBytes } from 'node:crypto'
import { buildApp } from '../src/app.js'
import { generateSigningKey } from '../src/auth/keys.js'
import { loadConfig } from '../src/config.js'
import { openDatabase, type DatabaseHandle } from '../src/db/client.js'

/** The OpenAPI document exactly as the app serves it, as committed text (on a database of its own unless given one). */
export async function generateOpenApi (given?: DatabaseHandle): Promise<string> {
  const database = given ?? await openDatabase({})
  const app = await buildApp({ config: loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent' }), database, signingKey: generateSigningKey(), refreshSecrets: { current: randomBytes(32), previous: [] }, mfaKey: randomBytes(32) })
  try {
    await app.ready()
    return `${JSON.stringify(app.swagger(), null, 2)}\n`
  } finally {
    await app.close()
    if (!given) await database.close()
  }
}
