import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { ConfigError, loadConfig } from './config.js'

// The process: configuration, the app, listening, and a graceful end on SIGTERM/SIGINT.
async function main () {
  let config
  try {
    config = loadConfig(process.env)
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message)
      process.exit(1)
    }
    throw err
  }

  let app
  try {
    app = await buildApp({ config })
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message)
      process.exit(1)
    }
    throw err
  }

  closeWithGrace({ delay: config.shutdownTimeoutSeconds * 1000 }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'shutting down after an error')
    else app.log.info({ signal }, 'shutting down')
    await app.close()
  })

  // set before the start (by the operator or the threadpool.cjs preload), or the pool kept libuv's default
  if (!process.env.UV_THREADPOOL_SIZE) {
    app.log.warn('UV_THREADPOOL_SIZE is not set, so libuv\'s thread pool, where passwords are hashed, has its default 4 threads: start with `node --require ./dist/threadpool.cjs dist/server.js` (as the image does) or set it to the number of cores')
  }
  await app.listen({ port: config.port, host: config.host })
}

await main()
