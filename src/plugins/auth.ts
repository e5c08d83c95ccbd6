import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { audit } from '../audit.js'
import type { Principal } from '../auth/sessions.js'
import type { Role } from '../db/schema.js'
import { ApiError } from '../errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** onRequest guard: a valid access token of a live session, or 401 with the RFC 6750 challenge. */
    authenticate: (request: FastifyRequest) => Promise<void>
    /** onRequest guard after `authenticate`: 403 `forbidden` unless the signed-in user has this role. */
    requireRole: (role: Role) => (request: FastifyRequest) => Promise<void>
    /** The user and session of a genuine access token, or 401; `ignoreExpiration` serves logout with an expired token. */
    verifyAccessToken: (token: string, options?: { ignoreExpiration?: boolean }) => { sub: string, sid: string }
  }
  interface FastifyRequest {
    principal: Principal | null
  }
}

const REALM = 'Bearer realm="api"'

/** 401 with `WWW-Authenticate`; `error="invalid_token"` only when a token was presented (RFC 6750 §3.1). */
export function unauthorized (detail: string, tokenPresented: boolean, code: 'invalid_token' | 'session_revoked' = 'invalid_token') {
  return new ApiError(code, detail, { headers: { 'www-authenticate': tokenPresented ? `${REALM}, error="invalid_token"` : REALM } })
}

/** The token of an `Authorization: Bearer <token>` header; undefined when there is none. */
export function bearerToken (request: FastifyRequest): string | undefined {
  const header = request.headers.authorization
  if (header === undefined) return undefined
  const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header)
  return match ? match[1] : ''
}

/** The guards: access tokens checked, then the session they name read on every request. */
async function authPlugin (app: FastifyInstance) {
  const { accessTokens, sessions } = app

  app.decorate('verifyAccessToken', (token: string, options?: { ignoreExpiration?: boolean }) => {
    const claims = accessTokens.verify(token, options)
    if (claims === 'unknown_key') throw unauthorized('The access token is not valid (unknown signing key)', true)
    if (!claims) throw unauthorized('The access token is not valid or has expired', true)
    return claims
  })

  app.decorateRequest('principal', null)
  app.decorate('authenticate', async (request: FastifyRequest) => {
    const token = bearerToken(request)
    if (token === undefined) throw unauthorized('This route needs an access token: Authorization: Bearer <token>', false)
    if (token === '') throw unauthorized('The Authorization header must be "Bearer <token>"', true)
    const principal = await sessions.principal(app.verifyAccessToken(token))
    if (principal === 'revoked') throw unauthorized('The session of this token has been signed out', true, 'session_revoked')
    if (principal === 'ended') throw unauthorized('The session of this token has ended', true)
    request.principal = principal
  })

  // The role is read with the session on every request, not taken from the token: a demotion takes effect at once.
  app.decorate('requireRole', (role: Role) => async (request: FastifyRequest) => {
    if (!request.principal) await app.authenticate(request)
    if (request.principal!.user.role !== role) {
      audit(request, 'forbidden', { userId: request.principal!.user.id, sessionId: request.principal!.sessionId, route: request.routeOptions.url })
      throw new ApiError('forbidden', `This route needs the ${role} role`)
    }
  })
}

export default fp(authPlugin, { name: 'auth', dependencies: ['services'] })
