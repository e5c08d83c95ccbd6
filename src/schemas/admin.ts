import { Type, type Static } from 'typebox'
import { nextCursor, STORED_TEXT, nullable, PageParams, Role } from './common.js'

const userExample = {
  id: '01a2082a-4c53-76c6-bedb-c9c808e9776d', email: 'ada@example.com', username: 'ada_l', name: 'Ada Lovelace', role: 'user', emailVerified: false, createdAt: '2026-11-23T11:28:39.506Z', suspended: false, suspendedUntil: null,
}

export const AdminUser = Type.Object({
  id: Type.String({ format: 'uuid' }),
  email: Type.String({ format: 'email' }),
  username: nullable(Type.String()),
  name: nullable(Type.String()),
  role: Role,
  emailVerified: Type.Boolean(),
  createdAt: Type.String({ format: 'date-time' }),
  suspended: Type.Boolean({ description: 'Suspended now: no sign-in until lifted or until suspendedUntil' }),
  suspendedUntil: nullable(Type.String({ format: 'date-time', description: 'When the suspension ends by itself; null when indefinite or not suspended' })),
})
export type AdminUserView = Static<typeof AdminUser>

export const UserPage = Type.Object({
  users: Type.Array(AdminUser),
  nextCursor: nextCursor(),
}, { description: 'A page of users ordered by id (creation order)', examples: [{ users: [userExample], nextCursor: null }] })

export const UserQuery = Type.Object({
  ...PageParams,
  email: Type.Optional(Type.String({ minLength: 1, maxLength: 254, pattern: STORED_TEXT, description: 'Case-insensitive email prefix', examples: ['ada@'] })),
}, { additionalProperties: false })

export const UserParams = Type.Object({ id: Type.String({ description: 'User id', examples: [userExample.id] }) })

export const Suspension = Type.Object({
  until: Type.Optional(Type.String({ format: 'date-time', description: 'When it ends by itself (ISO time, in the future); indefinite without it' })),
  reason: Type.Optional(Type.String({ maxLength: 500, pattern: STORED_TEXT, description: 'Shown in the notice to the user and in the security history' })),
}, { additionalProperties: false, examples: [{ until: '2027-01-01T00:00:00Z', reason: 'Reported for abuse' }] })
