import type { FastifyRequest } from 'fastify'

export type AuditEvent = 'register' | 'login_success' | 'login_failure' | 'refresh_reuse' | 'logout' | 'rate_limited'

/** One structured line per security event: who, from where, what; never a secret. */
export function audit (request: FastifyRequest, event: AuditEvent, fields: Record<string, unknown> = {}) {
  const level = event === 'refresh_reuse' || event === 'rate_limited' ? 'warn' : 'info'
  request.log[level]({ audit: event, ip: request.ip, ...fields }, `audit ${event}`)
}
