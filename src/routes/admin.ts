import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { audit } from '../audit.js'
import { nullable, problemResponses, Role } from '../schemas/common.js'

const userExample = {
  id: '01a2082a-4c53-76c6-bedb-c9c808e9776d', email: 'ada@example.com', username: 'ada_l', name: 'Ada Lovelace', role: 'user', emailVerified: false, createdAt: '2026-11-23T11:28:39.506Z',
}

const UserPage = Type.Object({
  users: Type.Array(Type.Object({
    id: Type.String({ format: 'uuid' }),
    email: Type.String({ format: 'email' }),
    username: nullable(Type.String()),
    name: nullable(Type.String()),
    role: Role,
    emailVerified: Type.Boolean(),
    createdAt: Type.String({ format: 'date-time' }),
  })),
  nextCursor: nullable(Type.String({ format: 'uuid', description: 'Pass as cursor for the next page; null on the last page' })),
}, { description: 'A page of users ordered by id (creation order)', examples: [{ users: [userExample], nextCursor: null }] })

const UserQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20, description: '1–100', examples: [20] })),
  cursor: Type.Optional(Type.String({ format: 'uuid', description: 'nextCursor of the previous page', examples: ['01a2082a-4c53-76c6-bedb-c9c808e9776d'] })),
  email: Type.Optional(Type.String({ minLength: 1, maxLength: 254, description: 'Case-insensitive email prefix', examples: ['ada@'] })),
}, { additionalProperties: false })

const UserParams = Type.Object({ id: Type.String({ description: 'User id', examples: [userExample.id] }) })

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
    const page = await app.accountService.listUsers({ limit, cursor, email })
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
      response: { 204: Type.Null({ description: 'Every session of the user has ended' }), ...problemResponses(401, 'forbidden', 'not_found') },
    },
  }, async (request, reply) => {
    const ended = await app.accountService.revokeAllSessions(request.params.id)
    audit(request, 'admin_sessions_revoked', { userId: request.principal!.user.id, sessionId: request.principal!.sessionId, targetUserId: request.params.id.toLowerCase(), sessionsEnded: ended })
    return reply.code(204).send(null)
  })
}
