import { Type, type Static, type TSchema, type TString } from 'typebox'
import { ROLES } from '../db/schema.js'
import { problems, toProblem, type ProblemCode } from '../errors.js'

// Response schemas say "string or null" and "one of these strings" as a type list and an enum, not
// anyOf: fast-json-stringify writes a type list or an enum directly, but for anyOf it runs a validator
// on every value to pick the branch (a cost on every /me, more for the problem codes of each error).
/** `string | null`, as `type: ['string', 'null']` (OpenAPI 3.1) */
export const nullable = <T extends TString>(schema: T) => Type.Unsafe<string | null>({ ...schema, type: ['string', 'null'] })
/** One of `values`, as a string enum */
export const oneOf = <const T extends readonly string[]>(values: T, options: { description?: string } = {}) =>
  Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options })

export const Email = Type.String({ format: 'email', maxLength: 254, description: 'Trimmed and lower-cased before use', examples: ['ada@example.com'] })
export const Username = Type.String({ pattern: '^[A-Za-z0-9_.-]{3,32}$', description: '3–32 of A–Z, a–z, 0–9, _ . -; unique ignoring case', examples: ['ada_l'] })
/**
 * Text that goes into a column as it is: Postgres cannot hold U+0000 (the insert would fail, a 500), and half a
 * surrogate pair has no UTF-8 (jsonb refuses it, a text column keeps U+FFFD instead).
 */
export const STORED_TEXT = '^[^\\u0000\\p{Cs}]*$'
export const DisplayName = Type.String({ maxLength: 100, pattern: STORED_TEXT, description: 'Trimmed; at most 100 characters; no NUL character, no lone surrogate', examples: ['Ada Lovelace'] })
// The policy (length in code points after NFKC, blocklist) is checked by the service, with its own codes.
export const Password = Type.String({ maxLength: 1024, description: 'NFKC-normalised; PASSWORD_MIN_LENGTH (default 15) to 128 code points; not a common password', examples: ['correct horse battery staple'] })
export const RememberMe = Type.Boolean({ description: 'Longer idle lifetime for the session (REFRESH_TOKEN_REMEMBER_TTL)' })

export const userExample = { id: '01a2082a-4c53-76c6-bedb-c9c808e9776d', email: 'ada@example.com', username: 'ada_l', name: 'Ada Lovelace', createdAt: '2026-11-23T11:28:39.506Z' }

export const User = Type.Object({
  id: Type.String({ format: 'uuid' }),
  email: Type.String({ format: 'email' }),
  username: nullable(Type.String()),
  name: nullable(Type.String()),
  createdAt: Type.String({ format: 'date-time' }),
}, { description: 'The signed-in user', examples: [userExample] })

export type PublicUser = Static<typeof User>

export const Role = oneOf(ROLES, { description: 'user by default; admin is granted from the command line (npm run user:role)' })

export const Profile = Type.Object({
  ...User.properties,
  role: Role,
  emailVerified: Type.Boolean({ description: 'Whether the email address has been verified' }),
}, { description: 'The signed-in user, with role and verification state', examples: [{ ...userExample, role: 'user', emailVerified: false }] })
export type Profile = Static<typeof Profile>

/** A user as the repositories return it (a subset of the row). */
export interface UserRow { id: string, email: string, username: string | null, name: string | null, role: Static<typeof Role>, emailVerifiedAt: Date | null, createdAt: Date }
export const toPublicUser = (u: UserRow): PublicUser => ({ id: u.id, email: u.email, username: u.username, name: u.name, createdAt: u.createdAt.toISOString() })
export const toProfile = (u: UserRow): Profile => ({ ...toPublicUser(u), role: u.role, emailVerified: u.emailVerifiedAt !== null })

export const Problem = Type.Object({
  type: Type.String({ description: 'URI identifying the problem type' }),
  title: Type.String(),
  status: Type.Integer(),
  code: oneOf(Object.keys(problems) as ProblemCode[], { description: 'Stable machine-readable code' }),
  detail: Type.Optional(Type.String()),
  errors: Type.Optional(Type.Array(Type.Object({ path: Type.String({ description: 'JSON Pointer into the request' }), message: Type.String() }))),
}, { title: 'Problem', description: 'RFC 9457 problem details' })

// One representative problem per status, for the document's examples.
const exampleCode: Record<number, ProblemCode> = {
  400: 'validation_failed',
  401: 'invalid_token',
  403: 'csrf_check_failed',
  404: 'not_found',
  409: 'email_taken',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  429: 'too_many_requests',
  500: 'internal_error',
  503: 'service_unavailable',
}

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

/**
 * Response schemas for the problems a route can send, as application/problem+json. A status stands for
 * its representative code; a code (e.g. 'forbidden') documents that code as its status's example.
 */
export function problemResponses (...sent: (number | ProblemCode)[]) {
  const out: Record<number, unknown> = {}
  for (const item of [...sent, 429, 500, 503]) {
    const status = typeof item === 'number' ? item : problems[item].status
    const code = typeof item === 'number' ? exampleCode[status] ?? 'internal_error' : item
    const example = code === 'validation_failed'
      ? toProblem(code, '/email must match format "email"', [{ path: '/email', message: 'must match format "email"' }])
      : toProblem(code)
    const description = typeof item === 'number' ? describe[status] ?? 'Problem' : `${problems[code].title} (${code})`
    const earlier = out[status] as { description: string, content: { 'application/problem+json': { schema: { examples: unknown[] } } } } | undefined
    // two problems of one status (validation_failed and mfa_token_invalid): both described, both shown
    out[status] = earlier
      ? { description: `${earlier.description}; or ${description}`, content: { 'application/problem+json': { schema: { ...Problem, examples: [...earlier.content['application/problem+json'].schema.examples, example] } } } }
      : { description, content: { 'application/problem+json': { schema: { ...Problem, examples: [example] } } } }
  }
  return out
}

/** A response schema with the description the OpenAPI document shows for it. */
export const described = <T extends TSchema>(schema: T, description: string, examples?: unknown[]): T =>
  ({ ...schema, description, ...(examples ? { examples } : {}) })

/** limit and cursor of a list read a page at a time (the cursor is the previous page's nextCursor). */
export const PageParams = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20, description: '1–100', examples: [20] })),
  cursor: Type.Optional(Type.String({ format: 'uuid', description: 'nextCursor of the previous page', examples: ['01a2082a-4c53-76c6-bedb-c9c808e9776d'] })),
}
export const nextCursor = (description = 'Pass as cursor for the next page; null on the last page') => nullable(Type.String({ format: 'uuid', description }))
