import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { audit } from '../audit.js'
import { source } from './auth.js'
import { Suspension, UserPage, UserParams, UserQuery } from '../schemas/admin.js'
import { problemResponses } from '../schemas/common.js'

/** Operators' routes: admins only (403 `forbidden` for everyone else). */
export default async function adminRoutes (fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const adminOnly = [app.authenticate, app.requireRole('admin')]

  app.get('/admin/users', {
    onRequest: adminOnly,
    schema: {
      tags: ['admin'],
      operationId: 'listUsers',
      summary: 'List users (admins only)',
      security: [{ bearerAuth: [] }],
      querystring: UserQuery,
      response: { 200: UserPage, ...problemResponses(400, 401, 'forbidden') },
    },
  }, async (request) => {
    const { limit = 20, cursor, email } = request.query
    const page = await app.accounts.listUsers({ limit, cursor, email })
    audit(request, 'admin_users_listed', { userId: request.principal!.user.id, sessionId: request.principal!.sessionId, count: page.users.length })
    return page
  })

  app.post('/admin/users/:id/revoke-sessions', {
    onRequest: adminOnly,
    schema: {
      tags: ['admin'],
      operationId: 'revokeUserSessions',
      summary: 'Sign a user out everywhere (admins only)',
      security: [{ bearerAuth: [] }],
      params: UserParams,
      response: { 204: Type.Null({ description: 'Every session of the user has ended' }), ...problemResponses(400, 401, 'forbidden', 'not_found', 413, 415) },
    },
  }, async (request, reply) => {
    const ended = await app.accounts.revokeAllSessions(request.params.id, { ...source(request), actorId: request.principal!.user.id })
    audit(request, 'admin_sessions_revoked', { userId: request.principal!.user.id, sessionId: request.principal!.sessionId, targetUserId: request.params.id.toLowerCase(), sessionsEnded: ended })
    return reply.code(204).send(null)
  })

  app.delete('/admin/users/:id/mfa', {
    onRequest: adminOnly,
    schema: {
      tags: ['admin'],
      operationId: 'resetUserMfa',
      summary: 'Remove a user\'s second factors, for a lost device (admins only)',
      description: 'Removes the authenticator app and recovery codes and signs the user out everywhere: the next sign-in needs the password only.',
      security: [{ bearerAuth: [] }],
      params: UserParams,
      response: { 204: Type.Null({ description: 'Second factors removed and every session of the user ended' }), ...problemResponses(400, 401, 'forbidden', 'not_found', 413, 415) },
    },
  }, async (request, reply) => {
    const { removed, sessionsEnded } = await app.mfa.reset(request.params.id, { ...source(request), actorId: request.principal!.user.id })
    audit(request, 'admin_mfa_reset', { userId: request.principal!.user.id, sessionId: request.principal!.sessionId, targetUserId: request.params.id.toLowerCase(), removed, sessionsEnded })
    return reply.code(204).send(null)
  })

  app.post('/admin/users/:id/suspend', {
    onRequest: adminOnly,
    schema: {
      tags: ['admin'],
      operationId: 'suspendUser',
      summary: 'Suspend an account (admins only)',
      description: 'Every session of the user ends at once; until the suspension is lifted (or until `until`), every way of signing in answers 403 account_suspended after its credentials check. The user is told by email. Not your own account (409 cannot_suspend_self).',
      security: [{ bearerAuth: [] }],
      params: UserParams,
      body: Suspension,
      response: { 204: Type.Null({ description: 'Suspended; every session of the user has ended' }), ...problemResponses(400, 401, 'forbidden', 'not_found', 'cannot_suspend_self', 413, 415) },
    },
  }, async (request, reply) => {
    const actorId = request.principal!.user.id
    const sessionsEnded = await app.accounts.suspend(request.params.id, request.body, { ...source(request), actorId })
    audit(request, 'account_suspended', { userId: actorId, sessionId: request.principal!.sessionId, targetUserId: request.params.id.toLowerCase(), until: request.body.until, sessionsEnded })
    return reply.code(204).send(null)
  })

  app.delete('/admin/users/:id/suspend', {
    onRequest: adminOnly,
    schema: {
      tags: ['admin'],
      operationId: 'unsuspendUser',
      summary: 'Lift a suspension (admins only)',
      security: [{ bearerAuth: [] }],
      params: UserParams,
      response: { 204: Type.Null({ description: 'The account can sign in again' }), ...problemResponses(400, 401, 'forbidden', 'not_found') },
    },
  }, async (request, reply) => {
    const actorId = request.principal!.user.id
    await app.accounts.unsuspend(request.params.id, { ...source(request), actorId })
    audit(request, 'account_unsuspended', { userId: actorId, sessionId: request.principal!.sessionId, targetUserId: request.params.id.toLowerCase() })
    return reply.code(204).send(null)
  })
}
