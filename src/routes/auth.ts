import type { AuthenticationResponseJSON } from '@simplewebauthn/server'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { audit, meta } from '../audit.js'
import type { EventSource } from '../auth/security-events.js'
import type { IssuedTokens } from '../auth/sessions.js'
import { ApiError } from '../errors.js'
import { bearerToken, unauthorized } from '../plugins/auth.js'
import { LoginBody, LogoutBody, RefreshBody, RegisterBody, TokenResponse } from '../schemas/auth.js'
import { described, problemResponses } from '../schemas/common.js'
import { OauthTokenBody } from '../schemas/identities.js'
import { LoginForbidden, LoginMfaBody } from '../schemas/mfa.js'
import { PasskeySignIn, RequestOptions } from '../schemas/passkeys.js'

/** Where a security event comes from: the client and, when signed in, the session (and the admin acting). */
export const source = (request: FastifyRequest): EventSource => ({
  ...meta(request),
  sessionId: request.principal?.sessionId ?? null,
})

/** Emails are trimmed and lower-cased, names trimmed, before the schema sees them. */
export async function normalizeIdentity (request: FastifyRequest) {
  const body = request.body as Record<string, unknown> | null | undefined
  if (!body || typeof body !== 'object' || Array.isArray(body)) return
  if (typeof body.email === 'string') body.email = body.email.trim().toLowerCase()
  if (typeof body.name === 'string') body.name = body.name.trim()
}

/** 400 unless the body has exactly one of two alternative fields (a rule JSON Schema states only awkwardly). */
function exactlyOne<K extends string> (body: Partial<Record<K, unknown>>, a: K, b: K) {
  if ((body[a] === undefined) === (body[b] === undefined)) {
    throw new ApiError('validation_failed', `Send exactly one of ${a} and ${b}`, {
      errors: [{ path: body[a] === undefined ? `/${a}` : `/${b}`, message: `send exactly one of ${a} and ${b}` }],
    })
  }
}

const hasNoBody = (request: FastifyRequest) => request.body === undefined || request.body === null

export default async function authRoutes (fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const { rateLimit } = app.config
  const cookie = app.refreshCookie
  // One limiter (one counter per IP) for both steps of a sign-in. A route's own rateLimit config gets a
  // store of its own, so a groupId there shares nothing (fastify/fastify-rate-limit#463).
  // Fail closed: if the shared counter cannot be reached, sign-in waits (503) rather than going unlimited.
  const signInIpLimit = app.rateLimit({ max: rateLimit.loginIp, timeWindow: 60_000, skipOnError: false })

  /** Body mode sends both tokens; cookie mode keeps the refresh token in an HttpOnly cookie. */
  function sendTokens (request: FastifyRequest, reply: FastifyReply, tokens: IssuedTokens, status = 200) {
    reply.code(status)
    if (!cookie.wanted(request)) return tokens
    cookie.set(reply, tokens.refreshToken, tokens.rememberMe ? tokens.refreshExpiresIn : undefined)
    return { tokenType: tokens.tokenType, accessToken: tokens.accessToken, expiresIn: tokens.expiresIn, user: tokens.user }
  }

  /** A browser refreshing or signing out sends no body: the cookie stands in for it, after the CSRF check. */
  function bodyFromCookie (request: FastifyRequest): { refreshToken: string } | undefined {
    const token = cookie.read(request)
    if (token === undefined) return undefined
    cookie.assertSameSite(request)
    return { refreshToken: token }
  }

  app.post('/register', {
    config: { rateLimit: { max: rateLimit.registerIp, timeWindow: 3_600_000 } },
    preValidation: normalizeIdentity,
    schema: {
      tags: ['auth'],
      operationId: 'register',
      summary: 'Create an account and sign in',
      body: RegisterBody,
      response: { 201: described(TokenResponse, 'Account created and signed in'), ...problemResponses(400, 409, 413, 415) },
    },
  }, async (request, reply) => {
    const result = await app.signIn.register(request.body, meta(request))
    audit(request, 'register', { userId: result.user.id })
    return sendTokens(request, reply, result, 201)
  })

  app.post('/login', {
    config: { rateLimit: false },
    onRequest: signInIpLimit,
    preValidation: normalizeIdentity,
    schema: {
      tags: ['auth'],
      operationId: 'login',
      summary: 'Sign in with email or username and password',
      body: LoginBody,
      response: { 200: described(TokenResponse, 'Signed in'), ...problemResponses(400, 'invalid_credentials', 413, 415), 403: LoginForbidden },
    },
  }, async (request, reply) => {
    exactlyOne(request.body, 'email', 'username')
    try {
      const result = await app.signIn.login(request.body, meta(request))
      audit(request, 'login_success', { userId: result.user.id })
      return sendTokens(request, reply, result)
    } catch (err) {
      if (err instanceof ApiError && err.code === 'mfa_required') audit(request, 'login_mfa_required', {})
      else if (err instanceof ApiError) audit(request, 'login_failure', { code: err.code })
      throw err
    }
  })

  app.post('/login/mfa', {
    // the same per-IP allowance as /login, counted together
    config: { rateLimit: false },
    onRequest: signInIpLimit,
    schema: {
      tags: ['auth'],
      operationId: 'loginMfa',
      summary: 'Finish signing in with a code of the authenticator app or a recovery code',
      description: 'After /login answered 403 mfa_required. A wrong code counts toward the per-account sign-in limit; five wrong codes void the mfaToken. Cookie mode (X-Auth-Mode: cookie) works as for /login.',
      body: LoginMfaBody,
      response: {
        200: described(TokenResponse, 'Signed in with two factors (aal2)'),
        ...problemResponses(400, 'mfa_token_invalid', 'mfa_code_invalid', 'account_suspended', 413, 415),
      },
    },
  }, async (request, reply) => {
    exactlyOne(request.body, 'code', 'recoveryCode')
    try {
      const { tokens, amr, method, recoveryCodesLeft } = await app.signIn.completeSecondFactor(request.body, meta(request))
      if (method === 'rec') audit(request, 'mfa_recovery_code_used', { userId: tokens.user.id, route: 'login', recoveryCodesLeft })
      audit(request, 'login_success', { userId: tokens.user.id, amr })
      return sendTokens(request, reply, tokens)
    } catch (err) {
      if (err instanceof ApiError && err.code === 'mfa_code_invalid') audit(request, 'mfa_code_failed', { route: 'login' })
      else if (err instanceof ApiError) audit(request, 'login_failure', { code: err.code, step: 'mfa' })
      throw err
    }
  })

  app.post('/login/passkey/options', {
    schema: {
      tags: ['auth'],
      operationId: 'passkeyLoginOptions',
      summary: 'Start signing in with a passkey',
      description: 'Options for navigator.credentials.get() (startAuthentication of @simplewebauthn/browser): a new challenge, single use, 5 minutes; no account is named, the passkey names it.',
      response: { 200: RequestOptions, ...problemResponses(400, 413, 415) },
    },
  }, async () => app.passkeys.signInOptions())

  app.post('/login/passkey', {
    config: { rateLimit: false },
    onRequest: signInIpLimit,
    schema: {
      tags: ['auth'],
      operationId: 'loginPasskey',
      summary: 'Sign in with a passkey',
      description: 'With user verification (a PIN or biometric on the device) two factors: aal2, amr hwk+user. Without it one factor: aal1, amr hwk, and an account with two-factor sign-in answers 403 mfa_required, finished by /login/mfa. Cookie mode (X-Auth-Mode: cookie) works as for /login.',
      body: PasskeySignIn,
      response: { 200: described(TokenResponse, 'Signed in'), ...problemResponses(400, 'invalid_credentials', 413, 415), 403: LoginForbidden },
    },
  }, async (request, reply) => {
    try {
      const outcome = await app.signIn.loginWithPasskey(request.body.response as unknown as AuthenticationResponseJSON, request.body.rememberMe ?? false, meta(request))
      if ('clone' in outcome) {
        audit(request, 'passkey_clone_suspected', { userId: outcome.userId, passkeyId: outcome.passkeyId })
        throw new ApiError('invalid_credentials', 'The passkey was not accepted')
      }
      audit(request, 'login_success', { userId: outcome.tokens.user.id, amr: outcome.amr })
      return sendTokens(request, reply, outcome.tokens)
    } catch (err) {
      if (err instanceof ApiError && err.code === 'mfa_required') audit(request, 'login_mfa_required', { method: 'passkey' })
      else if (err instanceof ApiError) audit(request, 'login_failure', { code: err.code, method: 'passkey' })
      throw err
    }
  })

  app.post('/oauth/token', {
    config: { rateLimit: false },
    onRequest: signInIpLimit,
    schema: {
      tags: ['identity providers'],
      operationId: 'oauthToken',
      summary: 'Finish signing in with an identity provider',
      description: 'The code of the redirect from /oauth/{id}/callback and the verifier of the code_challenge given to /oauth/{id}/authorize: the token response of /login (aal1, amr fed). An account with two-factor sign-in answers 403 mfa_required, finished by /login/mfa. Cookie mode (X-Auth-Mode: cookie) works as for /login.',
      body: OauthTokenBody,
      response: { 200: described(TokenResponse, 'Signed in'), ...problemResponses(400, 'oauth_code_invalid', 413, 415), 403: LoginForbidden },
    },
  }, async (request, reply) => {
    try {
      const tokens = await app.signIn.loginWithProvider(request.body, meta(request))
      audit(request, 'login_success', { userId: tokens.user.id, amr: ['fed'] })
      return sendTokens(request, reply, tokens)
    } catch (err) {
      if (err instanceof ApiError && err.code === 'mfa_required') audit(request, 'login_mfa_required', { method: 'fed' })
      else if (err instanceof ApiError) audit(request, 'login_failure', { code: err.code, method: 'fed' })
      throw err
    }
  })

  app.post('/refresh', {
    config: { rateLimit: { max: rateLimit.refreshIp, timeWindow: 60_000 } },
    preValidation: async (request) => {
      if (!hasNoBody(request)) return
      const body = bodyFromCookie(request)
      if (!body) throw unauthorized('No refresh token: send { "refreshToken": … } or, in cookie mode, the refresh cookie', false)
      request.body = body
    },
    schema: {
      tags: ['auth'],
      operationId: 'refresh',
      summary: 'Exchange a refresh token for new tokens (the old one is spent)',
      body: RefreshBody,
      response: { 200: described(TokenResponse, 'New tokens; the presented refresh token is spent'), ...problemResponses(400, 401, 403, 413, 415) },
    },
  }, async (request, reply) => {
    try {
      return sendTokens(request, reply, await app.sessions.refresh(request.body.refreshToken, meta(request)))
    } catch (err) {
      if (err instanceof ApiError && err.code === 'refresh_token_reused') audit(request, 'refresh_reuse', { sessionRevoked: true })
      // a dead cookie is of no use to the browser
      if (err instanceof ApiError && err.statusCode === 401 && cookie.wanted(request)) cookie.clear(reply)
      throw err
    }
  })

  app.post('/logout', {
    preValidation: async (request) => {
      if (hasNoBody(request)) request.body = bodyFromCookie(request) ?? {}
    },
    schema: {
      tags: ['auth'],
      operationId: 'logout',
      summary: 'Sign out this session, the others, or all',
      security: [{ bearerAuth: [] }, {}],
      body: LogoutBody,
      response: { 204: Type.Null({ description: 'Signed out (also when the token was unknown or already spent)' }), ...problemResponses(400, 401, 403, 413, 415) },
    },
  }, async (request, reply) => {
    const scope = request.body.scope ?? 'local'
    let caller: { sub: string, sid: string } | null = null
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
    await app.sessions.logout({ refreshToken: request.body.refreshToken, scope }, caller, meta(request))
    if (cookie.wanted(request) || cookie.read(request) !== undefined) cookie.clear(reply)
    audit(request, 'logout', { scope, userId: caller?.sub, sessionId: caller?.sid })
    return reply.code(204).send(null)
  })
}
