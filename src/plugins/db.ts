import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { openDatabase, type Database, type DatabaseHandle } from '../db/client.js'

declare module 'fastify' {
  interface FastifyInstance {
    db: Database
  }
}

/**
 * Decorates `app.db`. A handle passed in (tests share one per file) is left open; one opened here
 * from the config is migrated and closed with the app.
 */
async function dbPlugin (app: FastifyInstance, opts: { handle?: DatabaseHandle | undefined }) {
  let handle = opts.handle
  if (!handle) {
    const { databaseUrl, databasePoolSize, dataDir } = app.config
    handle = await openDatabase({ url: databaseUrl, dataDir, max: databasePoolSize })
    const owned = handle
    app.addHook('onClose', async () => { await owned.close() })
    await handle.migrate()
    app.log.info({ database: handle.kind, ...(handle.kind === 'pglite' ? { dataDir } : {}) }, 'database ready')
  }
  app.decorate('db', handle.db)
}

export default fp(dbPlugin, { name: 'db', dependencies: ['config'] })
