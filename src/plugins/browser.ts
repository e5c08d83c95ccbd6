import fastifyCookie from '@fastify/cookie'
import fastifyCors from '@fastify/cors'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { ApiError } from '../errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Cookie mode for browser apps: the refresh token lives in an HttpOnly cookie, never in the body. */
    refreshCookie: {
      name: string
      /** The request asked for cookie mode with `X-Auth-Mode: cookie`. */
      wanted: (request: FastifyRequest) => boolean
      read: (request: FastifyRequest) => string | undefined
      set: (reply: FastifyReply, token: string, maxAgeSeconds: number | undefined) => void
      clear: (reply: FastifyReply) => void
      /** A request authenticated by the cookie must prove it is not cross-site: 403 otherwise. */
      assertSameSite: (request: FastifyRequest) => void
    }
  }
}

export const AUTH_MODE_HEADER = 'x-auth-mode'

async function browserPlugin (app: FastifyInstance) {
  const { cookieSecure, corsOrigins } = app.config
  const allowed = new Set(corsOrigins)

  // Parsed only where the refresh cookie is read (/refresh, /logout), not on every request.
  await app.register(fastifyCookie, { hook: false })
  // Only listed origins get CORS headers (with credentials); any other origin gets none.
  await app.register(fastifyCors, {
    origin: (origin, cb) => cb(null, origin !== undefined && allowed.has(origin)),
    credentials: true,
    // every method a route uses: an app on a listed origin manages sessions, the profile and second factors too
    methods: ['GET', 'POST', 'PATCH', 'DELETE'],
    allowedHeaders: ['content-type', 'authorization', AUTH_MODE_HEADER],
    exposedHeaders: ['retry-after', 'ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset', 'www-authenticate'],
    maxAge: 600,
  })

  // __Host- binds the cookie to this exact host over https, with Path=/ and no Domain.
  const name = cookieSecure ? '__Host-refresh' : 'refresh'
  const base = { httpOnly: true, secure: cookieSecure, sameSite: 'strict' as const, path: '/' }

  app.decorate('refreshCookie', {
    name,
    wanted: request => String(request.headers[AUTH_MODE_HEADER] ?? '').toLowerCase() === 'cookie',
    read: request => (request.headers.cookie === undefined ? undefined : app.parseCookie(request.headers.cookie)[name] || undefined),
    set: (reply, token, maxAgeSeconds) => {
      reply.setCookie(name, token, maxAgeSeconds === undefined ? base : { ...base, maxAge: maxAgeSeconds })
    },
    clear: reply => { reply.setCookie(name, '', { ...base, maxAge: 0 }) },
    assertSameSite: request => {
      if (!app.refreshCookie.wanted(request)) {
        throw new ApiError('csrf_check_failed', 'A request authenticated by the refresh cookie must send the header X-Auth-Mode: cookie')
      }
      const origin = request.headers.origin
      if (origin === undefined) return
      const sameOrigin = origin === `${request.protocol}://${request.headers.host ?? ''}`
      if (!sameOrigin && !allowed.has(origin)) {
        throw new ApiError('csrf_check_failed', `Origin ${origin} is not allowed to use the refresh cookie`)
      }
    },
  })
}

export default fp(browserPlugin, { name: 'browser', dependencies: ['config'] })
