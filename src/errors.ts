// Every problem the API can send, defined once. `code` is the stable contract clients branch on.
export const problems = {
  validation_failed: { status: 400, title: 'The request is not valid' },
  invalid_json: { status: 400, title: 'The request body is not valid JSON' },
  password_too_short: { status: 400, title: 'The password is too short' },
  password_too_long: { status: 400, title: 'The password is too long' },
  password_too_common: { status: 400, title: 'The password is too common or too easy to guess' },
  email_change_token_invalid: { status: 400, title: 'The email change link is not valid, was already used, was replaced or has expired' },
  reset_token_invalid: { status: 400, title: 'The password reset link is not valid, was already used or has expired' },
  verification_token_invalid: { status: 400, title: 'The verification link is not valid, was already used or has expired' },
  passkey_invalid: { status: 400, title: 'The passkey response is not valid' },
  mfa_token_invalid: { status: 400, title: 'The mfaToken is not valid, was already used or has expired; sign in again' },
  redirect_uri_invalid: { status: 400, title: 'The redirect URI is not one this service may send users to' },
  oauth_state_invalid: { status: 400, title: 'This sign-in is not known, was already finished or has expired' },
  oauth_code_invalid: { status: 400, title: 'The code is not valid, was already used or has expired, or the verifier does not match' },
  provider_email_missing: { status: 400, title: 'The identity provider did not give an email address' },
  invalid_credentials: { status: 401, title: 'The credentials are not valid' },
  invalid_token: { status: 401, title: 'The token is missing, malformed, expired or not valid' },
  refresh_token_reused: { status: 401, title: 'The refresh token was already used; the session has been ended' },
  session_revoked: { status: 401, title: 'The session has ended' },
  csrf_check_failed: { status: 403, title: 'The request failed the cross-site request check' },
  current_password_incorrect: { status: 403, title: 'The current password is not correct' },
  forbidden: { status: 403, title: 'This account may not do this' },
  email_not_verified: { status: 403, title: 'The email address of this account is not verified yet' },
  mfa_required: { status: 403, title: 'A second factor is required to finish signing in' },
  mfa_step_up_required: { status: 403, title: 'This needs a session signed in with two factors (aal2)' },
  mfa_code_invalid: { status: 403, title: 'The code is not valid' },
  account_suspended: { status: 403, title: 'This account is suspended' },
  reauthentication_required: { status: 403, title: 'Sign in again first: this needs a recent sign-in' },
  provider_denied: { status: 403, title: 'The identity provider did not sign the user in' },
  not_found: { status: 404, title: 'Not found' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  email_taken: { status: 409, title: 'An account with this email already exists' },
  username_taken: { status: 409, title: 'This username is already taken' },
  mfa_already_enabled: { status: 409, title: 'Two-factor sign-in is already on for this account' },
  mfa_not_enrolling: { status: 409, title: 'There is no authenticator app enrolment to confirm' },
  passkey_exists: { status: 409, title: 'This passkey is already registered' },
  mfa_not_enabled: { status: 409, title: 'Two-factor sign-in is not on for this account' },
  cannot_suspend_self: { status: 409, title: 'An admin cannot suspend their own account' },
  identity_taken: { status: 409, title: 'This identity is linked to another account' },
  last_sign_in_method: { status: 409, title: 'This is the last way to sign in to the account' },
  payload_too_large: { status: 413, title: 'The request body is too large' },
  unsupported_media_type: { status: 415, title: 'The request body must be application/json' },
  too_many_requests: { status: 429, title: 'Too many requests' },
  internal_error: { status: 500, title: 'Internal server error' },
  provider_error: { status: 502, title: 'The identity provider refused or failed the sign-in' },
  id_token_invalid: { status: 502, title: 'The identity provider sent an ID token that failed its checks' },
  provider_unavailable: { status: 503, title: 'The identity provider cannot be reached right now' },
  service_unavailable: { status: 503, title: 'The service is temporarily unavailable' },
} as const satisfies Record<string, { status: number, title: string }>

export type ProblemCode = keyof typeof problems

export interface FieldError { path: string, message: string }

export const problemType = (code: ProblemCode) => `urn:problem:${code}`

/** The one error class routes and domain code throw; the error handler turns it into problem+json. */
export class ApiError extends Error {
  readonly code: ProblemCode
  readonly statusCode: number
  readonly detail: string | undefined
  readonly errors: FieldError[] | undefined
  /** Extra response headers (Retry-After, WWW-Authenticate, ...). */
  readonly headers: Record<string, string | number>
  /** RFC 9457 extension members (e.g. mfa_required's mfaToken); the route's response schema must declare them. */
  readonly extensions: Record<string, unknown> | undefined

  constructor (code: ProblemCode, detail?: string, options: { errors?: FieldError[], headers?: Record<string, string | number>, extensions?: Record<string, unknown>, cause?: unknown } = {}) {
    super(detail ?? problems[code].title, { cause: options.cause })
    this.name = 'ApiError'
    this.code = code
    this.statusCode = problems[code].status
    this.errors = options.errors
    this.headers = options.headers ?? {}
    this.extensions = options.extensions
    this.detail = detail
  }
}

export interface Problem {
  type: string
  title: string
  status: number
  code: ProblemCode
  detail?: string
  errors?: FieldError[]
}

export function toProblem (code: ProblemCode, detail?: string, errors?: FieldError[], extensions?: Record<string, unknown>): Problem {
  const p = problems[code]
  const body: Problem = { ...extensions, type: problemType(code), title: p.title, status: p.status, code }
  if (detail !== undefined) body.detail = detail
  if (errors !== undefined && errors.length > 0) body.errors = errors
  return body
}
