import { randomBytes } from 'node:crypto'
import { buildApp } from '../src/app.js'
import { generateSigningKey } from '../src/auth/keys.js'
import { loadConfig } from '../src/config.js'
import { openDatabase } from '../src/db/client.js'

/** The OpenAPI document exactly as the app serves it, as committed text. */
export async function generateOpenApi (): Promise<string> {
  const database = await openDatabase({})
  const app = await buildApp({ config: loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent' }), database, signingKey: generateSigningKey(), refreshSecrets: { current: randomBytes(32), previous: [] } })
  try {
    await app.ready()
    return `${JSON.stringify(app.swagger(), null, 2)}\n`
  } finally {
    await app.close()
    await database.close()
  }
}
