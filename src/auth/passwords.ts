import { hash, verify, type Options } from '@node-rs/argon2'
import { dictionary } from '@zxcvbn-ts/language-common'
import { ApiError } from '../errors.js'

export const MAX_PASSWORD_LENGTH = 128

// OWASP's argon2id floor. `algorithm: 2` is Argon2id: the library's const enum vanishes when
// TypeScript is stripped rather than compiled.
const ARGON2: Options = { algorithm: 2, memoryCost: 19_456, timeCost: 2, parallelism: 1 }

// ~49,000 common and breached passwords from a maintained package, compared case-insensitively.
const common = new Set((dictionary['passwords-common'] as string[]).map(p => p.normalize('NFKC').toLowerCase()))

/** NIST SP 800-63B-4: passwords are NFKC-normalised before they are checked or hashed. */
export const normalizePassword = (password: string) => password.normalize('NFKC')

/** Length in code points, not UTF-16 units. */
export const codePoints = (s: string) => [...s].length

export interface PolicyContext { minLength: number, email: string, username?: string | null | undefined, /** JSON Pointer of the field, for the problem's errors */ field?: string }

/** Throws the problem a registration (or password change) would get; takes a normalised password. */
export function assertPasswordPolicy (password: string, ctx: PolicyContext): void {
  const length = codePoints(password)
  const path = ctx.field ?? '/password'
  const field = [{ path, message: `must be ${ctx.minLength} to ${MAX_PASSWORD_LENGTH} characters` }]
  if (length < ctx.minLength) {
    throw new ApiError('password_too_short', `The password must be at least ${ctx.minLength} characters long`, { errors: field })
  }
  if (length > MAX_PASSWORD_LENGTH) {
    throw new ApiError('password_too_long', `The password must be at most ${MAX_PASSWORD_LENGTH} characters long`, { errors: field })
  }
  const lower = password.toLowerCase()
  const localPart = ctx.email.slice(0, ctx.email.lastIndexOf('@')).toLowerCase()
  if (common.has(lower)) {
    throw new ApiError('password_too_common', 'This password appears in a list of common or breached passwords; choose another',
      { errors: [{ path, message: 'is a common password' }] })
  }
  if (lower === localPart || (typeof ctx.username === 'string' && lower === ctx.username.toLowerCase())) {
    throw new ApiError('password_too_common', 'The password must not be the same as the email address or username',
      { errors: [{ path, message: 'matches the email or username' }] })
  }
}

/** Async: the hash runs on the libuv thread pool, never on the event loop. */
export const hashPassword = (password: string) => hash(password, ARGON2)

export async function verifyPassword (passwordHash: string, password: string): Promise<boolean> {
  try {
    return await verify(passwordHash, password)
  } catch {
    return false
  }
}

let dummy: Promise<string> | undefined
/** A hash with the same parameters, verified when the account does not exist so both paths cost the same. */
export const dummyHash = () => (dummy ??= hash('not-a-real-password-only-for-timing', ARGON2))
