import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import type { AccessClaims, ClientMeta } from '../auth/auth-service.js'
import { ApiError } from '../errors.js'
import { bearerToken } from '../plugins/auth.js'
import { DisplayName, Email, Password, RefreshTokenString, RememberMe, TokenResponse, Username, problemResponses } from '../schemas/common.js'

const RegisterBody = Type.Object({
  email: Email,
  password: Password,
  username: Type.Optional(Username),
  name: Type.Optional(DisplayName),
  rememberMe: Type.Optional(RememberMe),
}, { additionalProperties: false, examples: [{ email: 'ada@example.com', password: 'correct horse battery staple', username: 'ada_l', name: 'Ada Lovelace' }] })

const LoginBody = Type.Object({
  email: Type.Optional(Email),
  username: Type.Optional(Username),
  password: Type.String({ maxLength: 1024 }),
  rememberMe: Type.Optional(RememberMe),
}, { additionalProperties: false, description: 'Exactly one of email and username', examples: [{ email: 'ada@example.com', password: 'correct horse battery staple' }] })

const RefreshBody = Type.Object({ refreshToken: RefreshTokenString }, { additionalProperties: false })

const LogoutBody = Type.Object({
  refreshToken: Type.Optional(RefreshTokenString),
  scope: Type.Optional(Type.Union([Type.Literal('local'), Type.Literal('others'), Type.Literal('global')], {
    description: 'local (default): this session; others: every other session of the user; global: all of them. others and global need the bearer token.',
  })),
}, { additionalProperties: false })

const meta = (request: FastifyRequest): ClientMeta => ({
  ip: request.ip ?? null,
  userAgent: request.headers['user-agent']?.slice(0, 512) ?? null,
})

/** Emails are trimmed and lower-cased, names trimmed, before the schema sees them. */
async function normalizeIdentity (request: FastifyRequest) {
  const body = request.body as Record<string, unknown> | null | undefined
  if (!body || typeof body !== 'object' || Array.isArray(body)) return
  if (typeof body.email === 'string') body.email = body.email.trim().toLowerCase()
  if (typeof body.name === 'string') body.name = body.name.trim()
}

/** A body is optional for logout: no body reads as {}. */
async function emptyBodyIsObject (request: FastifyRequest) {
  if (request.body === undefined || request.body === null) request.body = {}
}

export default async function authRoutes (fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const { rateLimit } = app.config

  app.post('/register', {
    config: { rateLimit: { max: rateLimit.registerIp, timeWindow: 3_600_000 } },
    preValidation: normalizeIdentity,
    schema: {
      tags: ['auth'],
      operationId: 'register',
      summary: 'Create an account and sign in',
      body: RegisterBody,
      response: { 201: TokenResponse, ...problemResponses(400, 409, 413, 415) },
    },
  }, async (request, reply) => {
    const result = await app.authService.register(request.body, meta(request))
    request.log.info({ event: 'register', userId: result.user.id }, 'account created')
    return reply.code(201).send(result)
  })

  app.post('/login', {
    config: { rateLimit: { max: rateLimit.loginIp, timeWindow: 60_000 } },
    preValidation: normalizeIdentity,
    schema: {
      tags: ['auth'],
      operationId: 'login',
      summary: 'Sign in with email or username and password',
      body: LoginBody,
      response: { 200: TokenResponse, ...problemResponses(400, 401, 413, 415) },
    },
  }, async (request) => {
    const { email, username } = request.body
    if ((email === undefined) === (username === undefined)) {
      throw new ApiError('validation_failed', 'Send exactly one of email and username', {
        errors: [{ path: email === undefined ? '/email' : '/username', message: 'send exactly one of email and username' }],
      })
    }
    try {
      const result = await app.authService.login(request.body, meta(request))
      request.log.info({ event: 'login', userId: result.user.id }, 'signed in')
      return result
    } catch (err) {
      if (err instanceof ApiError) request.log.info({ event: 'login_failed', code: err.code }, 'sign-in refused')
      throw err
    }
  })

  app.post('/refresh', {
    config: { rateLimit: { max: rateLimit.refreshIp, timeWindow: 60_000 } },
    schema: {
      tags: ['auth'],
      operationId: 'refresh',
      summary: 'Exchange a refresh token for new tokens (the old one is spent)',
      body: RefreshBody,
      response: { 200: TokenResponse, ...problemResponses(400, 401, 413, 415) },
    },
  }, async (request) => {
    try {
      return await app.authService.refresh(request.body.refreshToken, meta(request))
    } catch (err) {
      if (err instanceof ApiError && err.code === 'refresh_token_reused') request.log.warn({ event: 'refresh_reuse' }, 'refresh token reuse: session revoked')
      throw err
    }
  })

  app.post('/logout', {
    preValidation: emptyBodyIsObject,
    schema: {
      tags: ['auth'],
      operationId: 'logout',
      summary: 'Sign out this session, the others, or all',
      security: [{ bearerAuth: [] }, {}],
      body: LogoutBody,
      response: { 204: Type.Null({ description: 'Signed out (also when the token was unknown or already spent)' }), ...problemResponses(400, 401, 413, 415) },
    },
  }, async (request, reply) => {
    const scope = request.body.scope ?? 'local'
    let caller: AccessClaims | null = null
    if (scope === 'local') {
      // A client signing out with an expired (but genuine) access token still ends its session.
      const token = bearerToken(request)
      if (token) {
        try {
          caller = app.verifyAccessToken(token, { ignoreExpiration: true })
        } catch {}
      }
    } else {
      await app.authenticate(request)
      caller = { sub: request.principal!.user.id, sid: request.principal!.sessionId }
    }
    await app.authService.logout({ refreshToken: request.body.refreshToken, scope }, caller)
    request.log.info({ event: 'logout', scope, userId: caller?.sub }, 'signed out')
    return reply.code(204).send(null)
  })
}
