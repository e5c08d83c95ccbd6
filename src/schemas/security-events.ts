import { Type } from 'typebox'
import { nextCursor, STORED_TEXT, nullable, PageParams } from './common.js'

const eventExample = {
  id: '01a2082a-4c53-76c6-bedb-c9c808e9776d',
  type: 'login_success',
  at: '2026-11-23T11:28:39.506Z',
  ip: '203.0.113.7',
  userAgent: 'Mozilla/5.0',
  sessionId: '01a2082a-4c53-76c6-bedb-c9c808e9776e',
  detail: { method: 'password', aal: 'aal1', amr: ['pwd'] },
}

export const SecurityEvent = Type.Object({
  id: Type.String({ format: 'uuid' }),
  type: Type.String({ description: 'login_success, login_failure, logout, refresh_reuse, rate_limited, session_revoked, password_changed, password_reset, email_changed, mfa_enabled, mfa_disabled, recovery_code_used, passkey_added, account_suspended, …' }),
  at: Type.String({ format: 'date-time' }),
  ip: nullable(Type.String()),
  userAgent: nullable(Type.String()),
  sessionId: nullable(Type.String({ format: 'uuid' })),
  detail: Type.Object({}, { additionalProperties: true, description: 'A few facts of the event (a sign-in\'s method, a refusal\'s code); never a secret' }),
})

export const AdminSecurityEvent = Type.Object({
  ...SecurityEvent.properties,
  userId: nullable(Type.String({ format: 'uuid', description: 'Whose account it concerns (null: no account, say a sign-in to an unknown email)' })),
  actorId: nullable(Type.String({ format: 'uuid', description: 'The admin who acted, when not the user' })),
})

const NextCursor = nextCursor('Pass as cursor for the next (older) page; null on the last page')

export const SecurityEventPage = Type.Object({ events: Type.Array(SecurityEvent), nextCursor: NextCursor }, {
  description: 'Newest first',
  examples: [{ events: [eventExample], nextCursor: null }],
})

export const AdminSecurityEventPage = Type.Object({ events: Type.Array(AdminSecurityEvent), nextCursor: NextCursor }, {
  description: 'Newest first',
  examples: [{ events: [{ ...eventExample, userId: '01a2082a-4c53-76c6-bedb-c9c808e9776f', actorId: null }], nextCursor: null }],
})

export const AdminEventQuery = Type.Object({
  userId: Type.Optional(Type.String({ format: 'uuid', description: 'Only the events of this account', examples: ['01a2082a-4c53-76c6-bedb-c9c808e9776f'] })),
  type: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: STORED_TEXT, description: 'Only the events of this type', examples: ['login_failure'] })),
  ...PageParams,
}, { additionalProperties: false })
