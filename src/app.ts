import { randomUUID } from 'node:crypto'
import { Ajv } from 'ajv'
import addFormats from 'ajv-formats'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import fp from 'fastify-plugin'
import { resolveMfaKey, resolveRefreshSecrets, resolveSigningKey, type RefreshSecrets, type SigningKey } from './auth/keys.js'
import type { Clock } from './clock.js'
import { assertServable, type Config } from './config.js'
import type { DatabaseHandle } from './db/client.js'
import { REDACT, serializeError, serializeRequest } from './log.js'
import authPlugin from './plugins/auth.js'
import browserPlugin from './plugins/browser.js'
import dbPlugin from './plugins/db.js'
import docsPlugin from './plugins/docs.js'
import errorsPlugin, { frameworkErrors } from './plugins/errors.js'
import mailPlugin from './plugins/mail.js'
import metricsPlugin from './plugins/metrics.js'
import prunePlugin from './plugins/prune.js'
import rateLimitPlugin from './plugins/rate-limit.js'
import redisPlugin from './plugins/redis.js'
import securityHeaders from './plugins/security-headers.js'
import servicesPlugin from './plugins/services.js'
import accountRoutes from './routes/account.js'
import adminRoutes from './routes/admin.js'
import authRoutes from './routes/auth.js'
import emailRoutes from './routes/email.js'
import demoRoutes from './routes/demo.js'
import healthRoutes from './routes/health.js'
import mfaRoutes from './routes/mfa.js'
import passkeyRoutes from './routes/passkeys.js'
import identityRoutes from './routes/identities.js'
import securityEventRoutes from './routes/security-events.js'
import wellKnownRoutes from './routes/well-known.js'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
    clock: Clock
  }
}

export interface BuildOptions {
  config: Config
  /** An open, migrated database; otherwise one is opened from the config and closed with the app. */
  database?: DatabaseHandle
  signingKey?: SigningKey
  refreshSecrets?: RefreshSecrets
  /** MFA_ENCRYPTION_KEY's 32 bytes; otherwise resolved from the config */
  mfaKey?: Buffer
  clock?: Clock
  /** Where log lines go (tests capture them); stdout otherwise. */
  logStream?: NodeJS.WritableStream
}

function validators () {
  // Bodies are taken as sent: no coercion ("123" is not a number), unknown properties refused, not dropped.
  const body = new Ajv({ coerceTypes: false, removeAdditional: false, useDefaults: true, allErrors: true, strict: false })
  // Query strings and params arrive as text, so those may be coerced.
  const other = new Ajv({ coerceTypes: 'array', removeAdditional: false, useDefaults: true, allErrors: true, strict: false })
  addFormats.default(body)
  addFormats.default(other)
  return { body, other }
}

export async function buildApp (options: BuildOptions): Promise<FastifyInstance> {
  const { config } = options
  // Settings and keys are checked before anything connects: a missing key stops the start at once.
  const key = options.signingKey ? { key: options.signingKey } : resolveSigningKey(config)
  const refresh = options.refreshSecrets ? { secrets: options.refreshSecrets } : resolveRefreshSecrets(config)
  const mfaKey = options.mfaKey ? { key: options.mfaKey } : resolveMfaKey(config)
  assertServable(config)
  const logger: FastifyServerOptions['logger'] = {
    level: config.logLevel,
    redact: { paths: REDACT, censor: '[redacted]' },
    serializers: { err: serializeError as never, req: serializeRequest as never },
    ...(options.logStream
      ? { stream: options.logStream }
      // a person reading a terminal gets readable lines; everything else (files, collectors) JSON
      : config.env === 'development' && process.stdout.isTTY ? { transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } } : {}),
  }
  const app = Fastify({
    logger,
    bodyLimit: 16_384,
    // proxy-addr takes a hop count too; Fastify's type omits it
    trustProxy: config.trustProxy as FastifyServerOptions['trustProxy'],
    requestIdHeader: false,
    genReqId: () => randomUUID(),
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    return503OnClosing: true,
    frameworkErrors,
    // long enough that any malformed id still reaches its route (auth first, then 404); longer ones are 404 from the router
    routerOptions: { maxParamLength: 1024 },
  })

  const ajv = validators()
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? ajv.body : ajv.other).compile(schema))
  // JSON only: text/plain is refused with 415 rather than parsed.
  app.removeContentTypeParser('text/plain')

  app.register(fp(async instance => {
    instance.decorate('config', config)
    instance.decorate('clock', options.clock ?? Date.now)
  }, { name: 'config' }))

  // On shutdown, answers to requests still in flight close their connection, so a keep-alive
  // connection that turns idle after the close began cannot hold the exit until its timeout.
  let closing = false
  app.addHook('preClose', async () => { closing = true })
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close')
    done(null, payload)
  })

  // infrastructure, then the app's own services, then routes
  await app.register(securityHeaders)
  await app.register(redisPlugin)
  await app.register(rateLimitPlugin)
  await app.register(browserPlugin)
  await app.register(errorsPlugin)
  await app.register(docsPlugin)
  await app.register(metricsPlugin)
  await app.register(dbPlugin, { handle: options.database })
  await app.register(mailPlugin, { signingKey: key.key })
  await app.register(prunePlugin)
  await app.register(servicesPlugin, { signingKey: key.key, refreshSecrets: refresh.secrets, mfaKey: mfaKey.key })
  await app.register(authPlugin)
  if (key.generatedPath) app.log.warn({ path: key.generatedPath, kid: key.key.kid }, 'generated a development signing key (set JWT_PRIVATE_KEY or JWT_PRIVATE_KEY_FILE in production)')
  else if (key.path) app.log.info({ path: key.path, kid: key.key.kid }, 'using the development signing key from the data folder')
  if (refresh.generatedPath) app.log.warn({ path: refresh.generatedPath }, 'generated a development refresh token secret (set REFRESH_TOKEN_SECRET in production)')
  else if (refresh.path) app.log.info({ path: refresh.path }, 'using the development refresh token secret from the data folder')
  if (mfaKey.generatedPath) app.log.warn({ path: mfaKey.generatedPath }, 'generated a development MFA encryption key (set MFA_ENCRYPTION_KEY in production)')
  else if (mfaKey.path) app.log.info({ path: mfaKey.path }, 'using the development MFA encryption key from the data folder')

  await app.register(healthRoutes)
  await app.register(wellKnownRoutes)
  await app.register(authRoutes)
  await app.register(accountRoutes)
  await app.register(mfaRoutes)
  await app.register(passkeyRoutes)
  await app.register(identityRoutes)
  await app.register(securityEventRoutes)
  await app.register(adminRoutes)
  await app.register(emailRoutes)
  if (config.env !== 'production') await app.register(demoRoutes)
  return app
}
