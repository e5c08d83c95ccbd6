import fastifyJwt from '@fastify/jwt'
import { createVerifier } from 'fast-jwt'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { audit } from '../audit.js'
import { AccountService } from '../auth/account-service.js'
import { AuthService, toProfile, type AccessClaims, type Profile } from '../auth/auth-service.js'
import { verificationKeyFromPem, type PublicJwk, type SigningKey } from '../auth/keys.js'
import { EmailService } from '../auth/email-service.js'
import { databaseThrottle, FORGOT_WINDOW_MS, redisThrottle } from '../auth/login-throttle.js'
import { dummyHash } from '../auth/passwords.js'
import type { Role } from '../db/schema.js'
import { ApiError } from '../errors.js'
import { findSessionWithUser } from '../repositories/sessions.js'

declare module 'fastify' {
  interface FastifyInstance {
    authService: AuthService
    accountService: AccountService
    emailService: EmailService
    signingKey: SigningKey
    /** Every key a token may be signed with: the signing key first, then retired ones (JWT_PREVIOUS_PUBLIC_KEYS). */
    publicKeys: PublicJwk[]
    /** onRequest guard: a valid access token of a live session, or 401 with the RFC 6750 challenge. */
    authenticate: (request: FastifyRequest) => Promise<void>
    /** onRequest guard after `authenticate`: 403 `forbidden` unless the signed-in user has this role. */
    requireRole: (role: Role) => (request: FastifyRequest) => Promise<void>
    /** Verifies an access token; `ignoreExpiration` serves logout with an expired token. */
    verifyAccessToken: (token: string, options?: { ignoreExpiration?: boolean }) => AccessClaims
  }
  interface FastifyRequest {
    principal: { user: Profile, sessionId: string } | null
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

/** The unverified header's kid, only to choose a key; the verifier checks everything else. */
function kidOf (token: string): string {
  try {
    const header = JSON.parse(Buffer.from(token.slice(0, token.indexOf('.')), 'base64url').toString()) as { kid?: unknown }
    return typeof header.kid === 'string' ? header.kid : ''
  } catch {
    return ''
  }
}

async function authPlugin (app: FastifyInstance, opts: { signingKey: SigningKey }) {
  const { config, clock } = app
  const key = opts.signingKey
  const { issuer, audience, accessTokenTtl } = config.jwt

  const verifyOptions = {
    algorithms: ['EdDSA' as const],
    allowedIss: issuer,
    allowedAud: audience,
    requiredClaims: ['iss', 'aud', 'sub', 'sid', 'jti', 'iat', 'exp'],
    clockTolerance: 30_000,
    checkTyp: 'at+jwt',
    complete: true,
  }
  // @fastify/jwt signs; verification goes through the verifiers below, chosen by the token's kid.
  await app.register(fastifyJwt, {
    secret: { private: key.privatePem, public: key.publicPem },
    sign: { algorithm: 'EdDSA', kid: key.kid, iss: issuer, aud: audience, expiresIn: accessTokenTtl, header: { alg: 'EdDSA', typ: 'at+jwt' } },
  })

  // The token's kid picks the key: the signing key or a retired one. One verifier per key, built once.
  const previous = config.previousPublicKeysPem.map((pem, i) => verificationKeyFromPem(pem, `JWT_PREVIOUS_PUBLIC_KEYS (key ${i + 1})`))
    .filter(k => k.kid !== key.kid)
  const accepted = [{ kid: key.kid, publicPem: key.publicPem, jwk: key.jwk }, ...previous]
  type Verify = (token: string) => { header: { kid?: unknown }, payload: Record<string, unknown> }
  const verifiers = new Map(accepted.map(k => [k.kid, {
    strict: createVerifier({ ...verifyOptions, key: k.publicPem }) as Verify,
    lenient: createVerifier({ ...verifyOptions, key: k.publicPem, ignoreExpiration: true }) as Verify,
  }]))
  app.decorate('publicKeys', accepted.map(k => k.jwk))

  // computed now, so the first sign-in of an unknown account costs no more than any other
  await dummyHash()
  app.decorate('signingKey', key)
  // one per-account count for sign-ins and for the routes that ask for the current password
  const throttle = app.redis
    ? redisThrottle(app.redis, config.redisKeyPrefix, config.rateLimit.loginAccount)
    : databaseThrottle(app.db, config.rateLimit.loginAccount)
  app.decorate('authService', new AuthService({
    db: app.db,
    config,
    clock,
    refreshSecret: key.refreshSecret,
    throttle,
    signAccessToken: claims => app.jwt.sign(claims),
    mailSecret: key.mailSecret,
    mailQueued: () => app.mailer.kick(),
  }))
  app.decorate('accountService', new AccountService({ db: app.db, config, clock, throttle }))
  app.decorate('emailService', new EmailService({
    db: app.db,
    config,
    clock,
    mailSecret: key.mailSecret,
    forgotThrottle: app.redis
      ? redisThrottle(app.redis, config.redisKeyPrefix, config.rateLimit.forgot, FORGOT_WINDOW_MS)
      : databaseThrottle(app.db, config.rateLimit.forgot, FORGOT_WINDOW_MS),
    loginThrottle: throttle,
    mailQueued: () => app.mailer.kick(),
  }))

  app.decorate('verifyAccessToken', (token: string, options?: { ignoreExpiration?: boolean }) => {
    const verifier = verifiers.get(kidOf(token))
    if (!verifier) throw unauthorized('The access token is not valid (unknown signing key)', true)
    let decoded: ReturnType<Verify>
    try {
      decoded = options?.ignoreExpiration ? verifier.lenient(token) : verifier.strict(token)
    } catch {
      throw unauthorized('The access token is not valid or has expired', true)
    }
    const { sub, sid } = decoded.payload
    if (typeof sub !== 'string' || typeof sid !== 'string' || !UUID.test(sub) || !UUID.test(sid)) {
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
    request.principal = { user: toProfile(row.user), sessionId: claims.sid }
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

export default fp(authPlugin, { name: 'auth', dependencies: ['config', 'db', 'redis', 'mail'] })
