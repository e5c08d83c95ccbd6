import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { audit, meta } from '../audit.js'
import { ApiError } from '../errors.js'
import { AccountDeletion, PageQuery, PasswordChange, ProfileChanges, SessionList, SessionParams } from '../schemas/account.js'
import { described, Profile, problemResponses } from '../schemas/common.js'
import { Me } from '../schemas/mfa.js'
import { normalizeIdentity, source } from './auth.js'

const bearerOnly = [{ bearerAuth: [] }]
const principal = (request: FastifyRequest) => request.principal!

/** Signed-in users managing their own account: sessions, profile, password, deletion. */
export default async function accountRoutes (fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const cookie = app.refreshCookie
  const { accounts } = app

  /** Failures of the routes that check the current password are audited (they count toward the account's limit). */
  async function auditFailure<T> (request: FastifyRequest, event: 'password_change_failed' | 'account_delete_failed', work: () => Promise<T>): Promise<T> {
    try {
      return await work()
    } catch (err) {
      if (err instanceof ApiError) audit(request, event, { userId: principal(request).user.id, sessionId: principal(request).sessionId, code: err.code })
      throw err
    }
  }

  app.get('/me', {
    onRequest: [app.authenticate],
    schema: {
      tags: ['account'],
      operationId: 'getMe',
      summary: 'The signed-in user',
      security: bearerOnly,
      response: { 200: Me, ...problemResponses(401) },
    },
  }, async (request) => ({ ...principal(request).user, mfa: principal(request).mfa }))

  app.patch('/me', {
    onRequest: [app.authenticate],
    preValidation: normalizeIdentity,
    schema: {
      tags: ['account'],
      operationId: 'updateMe',
      summary: 'Change the display name or username',
      security: bearerOnly,
      body: ProfileChanges,
      response: { 200: described(Profile, 'The updated profile'), ...problemResponses(400, 401, 'username_taken', 413, 415) },
    },
  }, async (request) => {
    const { user, sessionId } = principal(request)
    const profile = await accounts.updateProfile(user.id, request.body, source(request))
    audit(request, 'profile_updated', { userId: user.id, sessionId, fields: Object.keys(request.body) })
    return profile
  })

  app.post('/me/password', {
    onRequest: [app.authenticate],
    schema: {
      tags: ['account'],
      operationId: 'changePassword',
      summary: 'Change the password (or set a first one); every other session is signed out',
      description: 'A wrong current password counts toward the per-account sign-in limit; once it is reached this answers 429 without checking the password. An account made through an identity provider has no password: it leaves currentPassword out and needs a session signed in within the last 10 minutes (403 reauthentication_required otherwise).',
      security: bearerOnly,
      body: PasswordChange,
      response: {
        204: Type.Null({ description: 'Changed; this session stays signed in, every other one has ended' }),
        ...problemResponses(400, 401, 'current_password_incorrect', 'reauthentication_required', 413, 415),
      },
    },
  }, async (request, reply) => {
    const { user, sessionId, signedInAt } = principal(request)
    const ended = await auditFailure(request, 'password_change_failed', () => accounts.changePassword({ userId: user.id, sessionId, signedInAt }, request.body, source(request)))
    audit(request, 'password_changed', { userId: user.id, sessionId, otherSessionsEnded: ended })
    return reply.code(204).send(null)
  })

  app.delete('/me', {
    onRequest: [app.authenticate],
    // an account without a password may send no body at all
    preValidation: async (request) => { if (request.body === undefined || request.body === null) request.body = {} },
    schema: {
      tags: ['account'],
      operationId: 'deleteMe',
      summary: 'Delete the account, its sessions and tokens',
      description: 'A wrong current password counts toward the per-account sign-in limit. Afterwards every token of the account is refused and the email can register again. An account without a password leaves currentPassword out (or sends no body) and needs a session signed in within the last 10 minutes (403 reauthentication_required otherwise).',
      security: bearerOnly,
      body: AccountDeletion,
      response: {
        204: Type.Null({ description: 'Deleted' }),
        ...problemResponses(400, 401, 'current_password_incorrect', 'reauthentication_required', 413, 415),
      },
    },
  }, async (request, reply) => {
    const { user, sessionId, signedInAt } = principal(request)
    await auditFailure(request, 'account_delete_failed', () => accounts.deleteAccount({ userId: user.id, signedInAt }, request.body.currentPassword, source(request)))
    audit(request, 'account_deleted', { userId: user.id, sessionId })
    if (cookie.read(request) !== undefined) cookie.clear(reply)
    return reply.code(204).send(null)
  })

  app.get('/sessions', {
    onRequest: [app.authenticate],
    schema: {
      tags: ['account'],
      operationId: 'listSessions',
      summary: 'The signed-in user\'s live sessions',
      description: 'Live: not signed out, within the absolute lifetime, with an unexpired refresh token. Never a token. Newest first, a page at a time: pass nextCursor as cursor for the next.',
      security: bearerOnly,
      querystring: PageQuery,
      response: { 200: SessionList, ...problemResponses(400, 401) },
    },
  }, async (request) => {
    const { user, sessionId } = principal(request)
    return app.sessions.list(user.id, sessionId, { limit: request.query.limit ?? 20, cursor: request.query.cursor })
  })

  app.delete('/sessions/:id', {
    onRequest: [app.authenticate],
    schema: {
      tags: ['account'],
      operationId: 'revokeSession',
      summary: 'Sign out one session by its id',
      description: 'Its refresh token dies and its access tokens are refused at once. Revoking the current session is a logout. An id that is not one of your live sessions is 404.',
      security: bearerOnly,
      params: SessionParams,
      response: { 204: Type.Null({ description: 'Signed out' }), ...problemResponses(401, 'not_found') },
    },
  }, async (request, reply) => {
    const { user, sessionId } = principal(request)
    await app.sessions.revokeOwn(user.id, request.params.id, { ...meta(request), sessionId })
    const current = request.params.id.toLowerCase() === sessionId
    audit(request, 'session_revoked', { userId: user.id, sessionId, revokedSessionId: request.params.id.toLowerCase(), current })
    if (current && cookie.read(request) !== undefined) cookie.clear(reply)
    return reply.code(204).send(null)
  })
}
