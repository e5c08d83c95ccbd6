import type { FastifyRequest } from 'fastify'

export type AuditEvent = 'register' | 'login_success' | 'login_failure' | 'refresh_reuse' | 'logout' | 'rate_limited'
  | 'session_revoked' | 'profile_updated' | 'password_changed' | 'password_change_failed' | 'account_deleted' | 'account_delete_failed'
  | 'forbidden' | 'admin_users_listed' | 'admin_sessions_revoked'
  | 'password_reset_requested' | 'password_reset' | 'email_verified' | 'verification_resent'
  | 'login_mfa_required' | 'mfa_totp_enrolment_started' | 'mfa_enabled' | 'mfa_disabled' | 'mfa_recovery_code_used'
  | 'mfa_recovery_codes_regenerated' | 'mfa_code_failed' | 'admin_mfa_reset'
  | 'passkey_registered' | 'passkey_registration_failed' | 'passkey_renamed' | 'passkey_deleted' | 'passkey_clone_suspected'
  | 'account_suspended' | 'account_unsuspended' | 'email_change_requested' | 'email_change_failed' | 'email_changed'
  | 'identity_sign_in' | 'identity_sign_up' | 'identity_linked' | 'identity_refused' | 'identity_unlinked' | 'identity_unlink_refused'

const WARN = new Set<AuditEvent>(['refresh_reuse', 'rate_limited', 'forbidden', 'password_change_failed', 'account_delete_failed', 'mfa_code_failed', 'admin_mfa_reset', 'passkey_clone_suspected', 'identity_refused'])

/** The client of a request, as sessions and the security history keep it. */
export const meta = (request: FastifyRequest): { ip: string | null, userAgent: string | null } => ({
  ip: request.ip ?? null,
  userAgent: request.headers['user-agent']?.slice(0, 512) ?? null,
})

/** One structured line per security event: who, from where, what; never a secret. */
export function audit (request: FastifyRequest, event: AuditEvent, fields: Record<string, unknown> = {}) {
  const level = WARN.has(event) ? 'warn' : 'info'
  request.log[level]({ audit: event, ip: request.ip, ...fields }, `audit ${event}`)
}
