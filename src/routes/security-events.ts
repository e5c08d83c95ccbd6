import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { listAuditEvents, type AuditEventRow } from '../repositories/audit-events.js'
import { PageQuery } from '../schemas/account.js'
import { problemResponses } from '../schemas/common.js'
import { AdminEventQuery, AdminSecurityEventPage, SecurityEventPage } from '../schemas/security-events.js'

const view = (e: AuditEventRow) => ({
  id: e.id, type: e.type, at: e.at.toISOString(), ip: e.ip, userAgent: e.userAgent, sessionId: e.sessionId, detail: e.detail,
})

/** The security history: a user's own, and everyone's for admins. */
export default async function securityEventRoutes (fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()

  app.get('/me/security-events', {
    onRequest: [app.authenticate],
    schema: {
      tags: ['account'],
      operationId: 'listSecurityEvents',
      summary: 'The security history of this account',
      description: 'Sign-ins (with their method) and refused sign-ins, sign-outs, revoked sessions, password, email and second-factor changes, suspension and admin actions, newest first, kept AUDIT_RETENTION_DAYS.',
      security: [{ bearerAuth: [] }],
      querystring: PageQuery,
      response: { 200: SecurityEventPage, ...problemResponses(400, 401) },
    },
  }, async (request) => {
    const { limit = 20, cursor } = request.query
    const page = await listAuditEvents(app.db, { userId: request.principal!.user.id, limit, cursor: cursor?.toLowerCase() })
    // an admin's action shows what was done, not the admin's address, browser or session
    return { events: page.items.map(e => e.actorId ? { ...view(e), ip: null, userAgent: null, sessionId: null } : view(e)), nextCursor: page.nextCursor }
  })

  app.get('/admin/audit-events', {
    onRequest: [app.authenticate, app.requireRole('admin')],
    schema: {
      tags: ['admin'],
      operationId: 'listAuditEvents',
      summary: 'Everyone\'s security history (admins only)',
      security: [{ bearerAuth: [] }],
      querystring: AdminEventQuery,
      response: { 200: AdminSecurityEventPage, ...problemResponses(400, 401, 'forbidden') },
    },
  }, async (request) => {
    const { limit = 20, cursor, userId, type } = request.query
    const page = await listAuditEvents(app.db, { limit, cursor: cursor?.toLowerCase(), userId: userId?.toLowerCase(), type })
    return { events: page.items.map(e => ({ ...view(e), userId: e.userId, actorId: e.actorId })), nextCursor: page.nextCursor }
  })
}
