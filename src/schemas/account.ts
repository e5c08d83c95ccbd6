import { Type, type Static } from 'typebox'
import { AALS } from '../db/schema.js'
import { DisplayName, nextCursor, nullable, oneOf, PageParams, Password, Username } from './common.js'

const sessionExample = {
  id: '01a2082a-4c53-76c6-bedb-c9c808e9776d',
  current: true,
  createdAt: '2026-11-23T11:28:39.506Z',
  lastUsedAt: '2026-11-23T12:02:11.093Z',
  expiresAt: '2026-11-24T00:02:11.093Z',
  rememberMe: false,
  aal: 'aal1',
  userAgent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X)',
  ip: '203.0.113.7',
}

export const Session = Type.Object({
  id: Type.String({ format: 'uuid' }),
  current: Type.Boolean({ description: 'The session of the access token making this request' }),
  createdAt: Type.String({ format: 'date-time', description: 'Sign-in' }),
  lastUsedAt: Type.String({ format: 'date-time', description: 'The last sign-in or refresh' }),
  expiresAt: Type.String({ format: 'date-time', description: 'When it ends unless refreshed: the earlier of the idle and absolute limits' }),
  rememberMe: Type.Boolean(),
  aal: oneOf(AALS, { description: 'Assurance level of the sign-in (aal1: one factor, such as a password)' }),
  userAgent: nullable(Type.String({ description: 'User-Agent of the last sign-in or refresh' })),
  ip: nullable(Type.String({ description: 'Client IP of the last sign-in or refresh, as the rate limiter sees it' })),
})

export const SessionList = Type.Object({
  sessions: Type.Array(Session),
  nextCursor: nextCursor(),
}, { description: 'Live sessions, newest first', examples: [{ sessions: [sessionExample], nextCursor: null }] })

export const PageQuery = Type.Object(PageParams, { additionalProperties: false })

export const SessionParams = Type.Object({ id: Type.String({ description: 'Session id (from GET /sessions)', examples: [sessionExample.id] }) })

export const ProfileChanges = Type.Object({
  name: Type.Optional(Type.Union([DisplayName, Type.Null()], { description: 'null or an empty string removes it' })),
  username: Type.Optional(Type.Union([Username, Type.Null()], { description: 'null removes it (sign-in by email only)' })),
}, { additionalProperties: false, description: 'Only the fields sent change', examples: [{ name: 'Ada King', username: 'ada_king' }] })

const CurrentPassword = Type.String({ maxLength: 1024, description: 'The password the account has now', examples: ['correct horse battery staple'] })

export const PasswordChange = Type.Object({
  currentPassword: Type.Optional({ ...CurrentPassword, description: 'Required unless the account has no password (made through an identity provider)' }),
  newPassword: Password,
}, { additionalProperties: false, examples: [{ currentPassword: 'correct horse battery staple', newPassword: 'a different and longer passphrase' }] })

export const AccountDeletion = Type.Object({
  currentPassword: Type.Optional({ ...CurrentPassword, description: 'Required unless the account has no password (made through an identity provider)', examples: ['a different and longer passphrase'] }),
}, { additionalProperties: false, examples: [{ currentPassword: 'a different and longer passphrase' }] })

export type SessionView = Static<typeof Session>
