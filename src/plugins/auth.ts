import fastifyJwt from '@fastify/jwt'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { AuthService, toPublicUser, type AccessClaims, type PublicUser } from '../auth/auth-service.js'
import type { SigningKey } from '../auth/keys.js'
import { dummyHash } from '../auth/passwords.js'
import { ApiError } from '../errors.js'
import { findSessionWithUser } from '../repositories/sessions.js'

declare module 'fastify' {
  interface FastifyInstance {
    authService: AuthService
    signingKey: SigningKey
    /** onRequest guard: a valid access token of a live session, or 401 with the RFC 6750 challenge. */
    authenticate: (request: FastifyRequest) => Promise<void>
    /** Verifies an access token; `ignoreExpiration` serves logout with an expired token. */
    verifyAccessToken: (token: string, options?: { ignoreExpiration?: boolean }) => AccessClaims
  }
  interface FastifyRequest {
    principal: { user: PublicUser, sessionId: string } | null
  }
}

const REALM = 'Bearer realm="api"'
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

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

async function authPlugin (app: FastifyInstance, opts: { signingKey: SigningKey }) {
  const { config, clock } = app
  const key = opts.signingKey
  const { issuer, audience, accessTokenTtl } = config.jwt

  await app.register(fastifyJwt, {
    secret: { private: key.privatePem, public: key.publicPem },
    sign: { algorithm: 'EdDSA', kid: key.kid, iss: issuer, aud: audience, expiresIn: accessTokenTtl, header: { alg: 'EdDSA', typ: 'at+jwt' } },
    verify: {
      algorithms: ['EdDSA'],
      allowedIss: issuer,
      allowedAud: audience,
      requiredClaims: ['iss', 'aud', 'sub', 'sid', 'jti', 'iat', 'exp'],
      clockTolerance: 30_000,
      checkTyp: 'at+jwt',
      complete: true,
    },
  })

  // computed now, so the first sign-in of an unknown account costs no more than any other
  await dummyHash()
  app.decorate('signingKey', key)
  app.decorate('authService', new AuthService({
    db: app.db,
    config,
    clock,
    refreshSecret: key.refreshSecret,
    signAccessToken: claims => app.jwt.sign(claims),
  }))

  app.decorate('verifyAccessToken', (token: string, options?: { ignoreExpiration?: boolean }) => {
    let decoded: { header: { kid?: unknown }, payload: Record<string, unknown> }
    try {
      decoded = (options?.ignoreExpiration ? app.jwt.verify(token, { ignoreExpiration: true }) : app.jwt.verify(token)) as typeof decoded
    } catch {
      throw unauthorized('The access token is not valid or has expired', true)
    }
    const { sub, sid } = decoded.payload
    if (decoded.header.kid !== key.kid || typeof sub !== 'string' || typeof sid !== 'string' || !UUID.test(sub) || !UUID.test(sid)) {
      throw unauthorized('The access token is not valid', true)
    }
    return { sub, sid }
  })

  app.decorateRequest('principal', null)
  app.decorate('authenticate', async (request: FastifyRequest) => {
    const token = bearerToken(request)
    if (token === undefined) throw unauthorized('This route needs an access token: Authorization: Bearer <token>', false)
    if (token === '') throw unauthorized('The Authorization header must be "Bearer <token>"', true)
    const claims = app.verifyAccessToken(token)
    // one indexed query: logout and reuse revocation take effect at once
    const row = await findSessionWithUser(app.db, claims.sid, claims.sub)
    if (!row || row.absoluteExpiresAt.getTime() <= clock()) throw unauthorized('The session of this token has ended', true)
    if (row.revokedAt) throw unauthorized('The session of this token has been signed out', true, 'session_revoked')
    request.principal = { user: toPublicUser(row.user), sessionId: claims.sid }
  })
}

export default fp(authPlugin, { name: 'auth', dependencies: ['config', 'db'] })
