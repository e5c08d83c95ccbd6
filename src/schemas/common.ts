import { Type, type TSchema } from 'typebox'
import { problems } from '../errors.js'

const nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()])

export const Email = Type.String({ format: 'email', maxLength: 254, description: 'Trimmed and lower-cased before use', examples: ['ada@example.com'] })
export const Username = Type.String({ pattern: '^[A-Za-z0-9_.-]{3,32}$', description: '3–32 of A–Z, a–z, 0–9, _ . -; unique ignoring case', examples: ['ada_l'] })
export const DisplayName = Type.String({ maxLength: 100, description: 'Trimmed; at most 100 characters', examples: ['Ada Lovelace'] })
// The policy (length in code points after NFKC, blocklist) is checked by the service, with its own codes.
export const Password = Type.String({ maxLength: 1024, description: 'NFKC-normalised; PASSWORD_MIN_LENGTH (default 15) to 128 code points; not a common password', examples: ['correct horse battery staple'] })
export const RememberMe = Type.Boolean({ description: 'Longer idle lifetime for the session (REFRESH_TOKEN_REMEMBER_TTL)' })
export const RefreshTokenString = Type.String({ maxLength: 512, description: 'Opaque refresh token (base64url)', examples: ['kq3Jz8tK3mFv6YyQe5s7H2bX0n9Lr4cWd1aPuGhTjEo'] })

export const User = Type.Object({
  id: Type.String({ format: 'uuid' }),
  email: Type.String({ format: 'email' }),
  username: nullable(Type.String()),
  name: nullable(Type.String()),
  createdAt: Type.String({ format: 'date-time' }),
})

export const TokenResponse = Type.Object({
  tokenType: Type.Literal('Bearer'),
  accessToken: Type.String({ description: 'EdDSA-signed JWT (typ at+jwt)' }),
  expiresIn: Type.Integer({ description: 'Seconds until the access token expires' }),
  refreshToken: Type.Optional(Type.String({ description: 'Opaque, single use: each refresh returns a new one. Absent in cookie mode (X-Auth-Mode: cookie), where it is set as an HttpOnly cookie instead.' })),
  refreshExpiresIn: Type.Optional(Type.Integer({ description: 'Seconds until the refresh token expires unless used. Absent in cookie mode.' })),
  user: User,
})

export const Problem = Type.Object({
  type: Type.String({ description: 'URI identifying the problem type' }),
  title: Type.String(),
  status: Type.Integer(),
  code: Type.Union(Object.keys(problems).map(c => Type.Literal(c)), { description: 'Stable machine-readable code' }),
  detail: Type.Optional(Type.String()),
  errors: Type.Optional(Type.Array(Type.Object({ path: Type.String({ description: 'JSON Pointer into the request' }), message: Type.String() }))),
}, { title: 'Problem', description: 'RFC 9457 problem details' })

const describe: Record<number, string> = {
  400: 'The request is not valid (validation_failed, or a password rule)',
  401: 'Not authenticated',
  403: 'Cookie mode: the request failed the cross-site check (csrf_check_failed)',
  404: 'Not found',
  409: 'Conflict with an existing account',
  413: 'The body is over 16 KiB',
  415: 'The body is not application/json',
  429: 'Rate limited; see Retry-After',
  500: 'Internal error',
  503: 'The database is unavailable',
}

/** Response schemas for the problems a route can send, as application/problem+json. */
export function problemResponses (...statuses: number[]) {
  const out: Record<number, unknown> = {}
  for (const status of [...statuses, 429, 500, 503]) {
    out[status] = { description: describe[status] ?? 'Problem', content: { 'application/problem+json': { schema: Problem } } }
  }
  return out
}
