import { availableParallelism } from 'node:os'
import { Ajv } from 'ajv'
import { Type, type Static } from 'typebox'

// Every setting the service reads, with its default. The names are the operator contract.
const Int = (min: number, max: number, def: number, description: string) =>
  Type.Integer({ minimum: min, maximum: max, default: def, description })

export const EnvSchema = Type.Object({
  NODE_ENV: Type.Union([Type.Literal('development'), Type.Literal('production'), Type.Literal('test')], { default: 'development' }),
  PORT: Int(0, 65535, 3000, 'TCP port to listen on'),
  HOST: Type.String({ minLength: 1, default: '127.0.0.1', description: 'Interface to listen on' }),
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://', description: 'Postgres URL; embedded PGlite when unset' })),
  DATABASE_POOL_SIZE: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'Postgres connections of this process; twice the cores when unset' })),
  DATA_DIR: Type.String({ minLength: 1, default: './data', description: 'Embedded database and development key' }),
  LOG_LEVEL: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map(l => Type.Literal(l)), { default: 'info' }),
  TRUST_PROXY: Type.String({ default: 'false', description: 'false, true, a hop count, or comma-separated proxy addresses/CIDRs' }),
  JWT_PRIVATE_KEY: Type.Optional(Type.String({ minLength: 1, description: 'Ed25519 private key (PEM)' })),
  JWT_PRIVATE_KEY_FILE: Type.Optional(Type.String({ minLength: 1, description: 'File holding the Ed25519 private key (PEM)' })),
  JWT_ISSUER: Type.String({ minLength: 1, default: 'auth-api' }),
  JWT_AUDIENCE: Type.String({ minLength: 1, default: 'auth-api' }),
  ACCESS_TOKEN_TTL: Int(30, 3600, 900, 'Access token lifetime, seconds'),
  REFRESH_TOKEN_TTL: Int(60, 31_536_000, 43_200, 'Refresh token (idle) lifetime, seconds'),
  REFRESH_TOKEN_REMEMBER_TTL: Int(60, 31_536_000, 2_592_000, 'Idle lifetime with rememberMe, seconds'),
  SESSION_ABSOLUTE_TTL: Int(60, 31_536_000, 2_592_000, 'Session lifetime from sign-in, seconds'),
  REFRESH_REUSE_GRACE_SECONDS: Int(0, 300, 10, 'Window in which a spent refresh token returns its successor'),
  REFRESH_TOKEN_SECRET: Type.Optional(Type.String({ minLength: 1, description: 'Base64 of at least 32 random bytes: the MAC key of refresh tokens (required in production; generated into DATA_DIR otherwise)' })),
  REFRESH_TOKEN_PREVIOUS_SECRETS: Type.Optional(Type.String({ description: 'Comma-separated retired REFRESH_TOKEN_SECRET values, still accepted, never used to issue' })),
  PASSWORD_MIN_LENGTH: Int(8, 128, 15, 'Minimum password length in code points'),
  RATE_LIMIT_LOGIN_IP: Int(1, 1_000_000, 20, 'POST /login per client IP per minute'),
  RATE_LIMIT_REGISTER_IP: Int(1, 1_000_000, 20, 'POST /register per client IP per hour'),
  RATE_LIMIT_REFRESH_IP: Int(1, 1_000_000, 60, 'POST /refresh per client IP per minute'),
  RATE_LIMIT_IP: Int(1, 1_000_000, 300, 'Every other route per client IP per minute'),
  RATE_LIMIT_LOGIN_ACCOUNT: Int(1, 1_000_000, 10, 'Failed logins per account per 15 minutes'),
  COOKIE_SECURE: Type.Boolean({ default: true, description: 'Cookie mode: Secure and the __Host- prefix (false only for plain-http development)' }),
  CORS_ORIGINS: Type.String({ default: '', description: 'Comma-separated origins allowed to call the API from a browser, with credentials' }),
  DOCS_ENABLED: Type.Boolean({ default: true, description: 'Serve /docs and /openapi.json' }),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://', description: 'Redis for rate-limit counters shared by every instance' })),
  REDIS_KEY_PREFIX: Type.String({ default: 'auth:', description: 'Prefix of every Redis key' }),
  JWT_PREVIOUS_PUBLIC_KEYS: Type.Optional(Type.String({ description: 'PEM public keys still accepted (and published) but never used to sign' })),
  METRICS_ENABLED: Type.Boolean({ default: false, description: 'Serve Prometheus metrics at /metrics' }),
  METRICS_TOKEN: Type.Optional(Type.String({ minLength: 16, description: 'When set, /metrics needs Authorization: Bearer <token>' })),
  PRUNE_INTERVAL_SECONDS: Int(0, 86_400 * 7, 3600, 'How often dead sessions and tokens are purged; 0 turns it off'),
  SHUTDOWN_TIMEOUT_SECONDS: Int(1, 300, 10, 'Longest wait for in-flight requests on SIGTERM'),
  APP_URL: Type.Optional(Type.String({ pattern: '^https?://[^\\s]+$', description: 'Base of the links in emails (required in production; http://localhost:PORT otherwise)' })),
  SMTP_URL: Type.Optional(Type.String({ pattern: '^smtps?://', description: 'SMTP server for mail; without it mail is logged and written as .eml files under DATA_DIR/mail' })),
  MAIL_FROM: Type.String({ minLength: 3, default: 'Auth API <no-reply@localhost>', description: 'Sender of every email' }),
  MAIL_SUBJECT_RESET: Type.String({ minLength: 1, default: 'Reset your password', description: 'Subject of the password reset email' }),
  MAIL_SUBJECT_VERIFY: Type.String({ minLength: 1, default: 'Verify your email address', description: 'Subject of the verification email' }),
  RESET_TOKEN_TTL: Int(60, 86_400, 1800, 'Password reset token lifetime, seconds'),
  VERIFY_TOKEN_TTL: Int(60, 2_592_000, 86_400, 'Email verification token lifetime, seconds'),
  RATE_LIMIT_FORGOT: Int(1, 1_000_000, 3, 'POST /password/forgot per email address per hour'),
  RATE_LIMIT_FORGOT_IP: Int(1, 1_000_000, 20, 'POST /password/forgot per client IP per hour'),
  MFA_ISSUER: Type.String({ minLength: 1, maxLength: 64, default: 'Auth API', description: 'The name authenticator apps show for this service' }),
  MFA_ENCRYPTION_KEY: Type.Optional(Type.String({ minLength: 1, description: 'Base64 of exactly 32 random bytes: the AES-256-GCM key of stored TOTP secrets (required in production; generated into DATA_DIR otherwise)' })),
  WEBAUTHN_RP_ID: Type.Optional(Type.String({ pattern: '^[a-z0-9.-]+$', maxLength: 253, description: 'Passkeys: the relying party ID, a domain (default: the host of APP_URL; localhost in development)' })),
  WEBAUTHN_RP_NAME: Type.String({ minLength: 1, maxLength: 64, default: 'Auth API', description: 'Passkeys: the name shown when one is made' }),
  WEBAUTHN_ORIGINS: Type.Optional(Type.String({ description: 'Passkeys: comma-separated exact origins allowed to use them, android:apk-key-hash:… for an Android app (default: the origin of APP_URL, plus http://localhost:PORT in development)' })),
  PUBLIC_URL: Type.Optional(Type.String({ pattern: '^https?://[^\\s]+$', description: 'The external base URL of this API; identity providers call back to <PUBLIC_URL>/oauth/<id>/callback (required in production with a provider; http://localhost:PORT otherwise)' })),
  OIDC_PROVIDERS: Type.Optional(Type.String({ description: 'Comma-separated ids of OpenID Connect providers ([a-z0-9-]+); each id X reads OIDC_X_ISSUER, OIDC_X_CLIENT_ID, OIDC_X_CLIENT_SECRET, OIDC_X_NAME and OIDC_X_SCOPES' })),
  OAUTH_REDIRECT_URIS: Type.Optional(Type.String({ description: 'Comma-separated exact redirect URIs of the client apps (web URLs, mobile custom schemes such as com.example.app:/oauth); outside production PUBLIC_URL/demo is added for the demo page' })),
  EMAIL_CHANGE_TOKEN_TTL: Int(60, 86_400, 3600, 'Email change link lifetime, seconds'),
  AUDIT_RETENTION_DAYS: Int(1, 3650, 90, 'Days the security history (audit_events) is kept'),
  WEBHOOK_URL: Type.Optional(Type.String({ pattern: '^https?://[^\\s]+$', description: 'Where webhook events are POSTed (Standard Webhooks); with WEBHOOK_SECRET' })),
  WEBHOOK_SECRET: Type.Optional(Type.String({ pattern: '^whsec_[A-Za-z0-9+/=]+$', description: 'The Standard Webhooks signing secret, whsec_ followed by base64 of 24 to 64 random bytes' })),
  WEBHOOK_EVENTS: Type.Optional(Type.String({ description: 'Comma-separated webhook events to send (default: all of user.created, user.updated, user.deleted, user.suspended, session.created, session.revoked)' })),
  REQUIRE_EMAIL_VERIFICATION: Type.Boolean({ default: false, description: 'Refuse sign-in (403 email_not_verified) until the email is verified' }),
})
export type Env = Static<typeof EnvSchema>

export interface Config {
  env: Env['NODE_ENV']
  port: number
  host: string
  databaseUrl: string | undefined
  /** postgres.js connections (Postgres URL only) */
  databasePoolSize: number
  dataDir: string
  logLevel: string
  trustProxy: boolean | number | string[]
  jwt: { privateKeyPem: string | undefined, privateKeyFile: string | undefined, issuer: string, audience: string, accessTokenTtl: number }
  refresh: {
    ttl: number
    rememberTtl: number
    absoluteTtl: number
    reuseGraceSeconds: number
    /** REFRESH_TOKEN_SECRET decoded; undefined: development generates one into the data folder */
    secret: Buffer | undefined
    previousSecrets: Buffer[]
  }
  passwordMinLength: number
  rateLimit: { loginIp: number, registerIp: number, refreshIp: number, ip: number, loginAccount: number, forgot: number, forgotIp: number }
  cookieSecure: boolean
  corsOrigins: string[]
  docsEnabled: boolean
  redisUrl: string | undefined
  redisKeyPrefix: string
  mail: {
    appUrl: string
    appUrlSet: boolean
    smtpUrl: string | undefined
    from: string
    subjects: { reset: string, verify: string }
    resetTtl: number
    verifyTtl: number
    emailChangeTtl: number
    requireVerification: boolean
  }
  previousPublicKeysPem: string[]
  metrics: { enabled: boolean, token: string | undefined }
  webauthn: {
    rpId: string
    rpName: string
    /** exact origins a ceremony's clientDataJSON may name */
    origins: string[]
  }
  mfa: {
    issuer: string
    /** MFA_ENCRYPTION_KEY decoded; undefined: development generates one into the data folder */
    encryptionKey: Buffer | undefined
  }
  oidc: {
    /** PUBLIC_URL without a trailing slash */
    publicUrl: string
    publicUrlSet: boolean
    providers: OidcProviderSettings[]
    /** exact redirect URIs of the client apps */
    redirectUris: string[]
  }
  /** days the security history is kept */
  auditRetentionDays: number
  webhooks: {
    /** undefined: no webhooks are queued */
    url: string | undefined
    secret: string | undefined
    events: WebhookEventType[]
  }
  pruneIntervalSeconds: number
  shutdownTimeoutSeconds: number
}

export const WEBHOOK_EVENTS = ['user.created', 'user.updated', 'user.deleted', 'user.suspended', 'session.created', 'session.revoked'] as const
export type WebhookEventType = typeof WEBHOOK_EVENTS[number]

export interface OidcProviderSettings {
  id: string
  name: string
  /** the issuer identifier; discovery reads <issuer>/.well-known/openid-configuration */
  issuer: URL
  clientId: string
  clientSecret: string
  scopes: string
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

const ajv = new Ajv({ coerceTypes: true, useDefaults: true, allErrors: true, strict: false })
const validateEnv = ajv.compile<Env>(EnvSchema)

function parseTrustProxy (value: string): Config['trustProxy'] {
  const v = value.trim().toLowerCase()
  if (v === 'false' || v === '') return false
  if (v === 'true') return true
  if (/^\d+$/.test(v)) return Number(v)
  const list = v.split(',').map(s => s.trim()).filter(Boolean)
  if (!list.every(s => /^[0-9a-f.:]+(\/\d{1,3})?$/.test(s))) {
    throw new ConfigError('TRUST_PROXY must be false, true, a hop count, or comma-separated IP addresses/CIDRs')
  }
  return list
}

const MIN_SECRET_BYTES = 32
/** AES-256 */
export const MFA_KEY_BYTES = 32

/** A secret given as base64 (or base64url) of at least 32 bytes, or of exactly `exact` bytes. */
function decodeSecret (value: string, name: string, exact?: number): Buffer {
  const text = value.trim()
  const bytes = /^[A-Za-z0-9+/_-]+={0,2}$/.test(text) ? Buffer.from(text.replace(/-/g, '+').replace(/_/g, '/'), 'base64') : Buffer.alloc(0)
  if (exact !== undefined ? bytes.length !== exact : bytes.length < MIN_SECRET_BYTES) {
    const size = exact !== undefined ? `exactly ${exact}` : `at least ${MIN_SECRET_BYTES}`
    throw new ConfigError(`${name} must be base64 of ${size} random bytes (e.g. openssl rand -base64 32)`)
  }
  return bytes
}

function splitPems (value: string): string[] {
  const pems = value.match(/-----BEGIN PUBLIC KEY-----[\s\S]*?-----END PUBLIC KEY-----/g) ?? []
  if (value.trim() && pems.length === 0) throw new ConfigError('JWT_PREVIOUS_PUBLIC_KEYS must hold PEM public keys (-----BEGIN PUBLIC KEY-----)')
  return pems
}

/** The origin an Android app's passkey ceremonies carry (Credential Manager): the SHA-256 of its signing certificate. */
const ANDROID_ORIGIN = /^android:apk-key-hash:[A-Za-z0-9_-]{43}$/

/** The relying party of passkeys: its ID, its name, and the origins a ceremony may come from. */
function webauthnSettings (e: Env): Config['webauthn'] {
  const appUrl = e.APP_URL === undefined ? undefined : new URL(e.APP_URL)
  const rpId = e.WEBAUTHN_RP_ID ?? appUrl?.hostname ?? 'localhost'
  const origins = e.WEBAUTHN_ORIGINS !== undefined
    ? e.WEBAUTHN_ORIGINS.split(',').map(o => o.trim().replace(/\/$/, '')).filter(Boolean)
    : [...new Set([...(appUrl ? [appUrl.origin] : []), ...(e.NODE_ENV === 'production' ? [] : [`http://localhost:${e.PORT}`])])]
  for (const origin of origins) {
    if (!/^https?:\/\/[^/\s]+$/.test(origin) && !ANDROID_ORIGIN.test(origin)) {
      throw new ConfigError(`WEBAUTHN_ORIGINS: "${origin}" is not an origin like https://app.example.com (or android:apk-key-hash:<base64url SHA-256 of the app's signing certificate>)`)
    }
  }
  return { rpId, rpName: e.WEBAUTHN_RP_NAME, origins }
}

const PROVIDER_ID = /^[a-z0-9-]+$/
/** A URI scheme (RFC 3986): how a mobile app's redirect URI starts, e.g. com.example.app: */
const SCHEME = /^[a-z][a-z0-9+.-]*:/i
const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]'])

/** Why a client redirect URI cannot be allowed, if it cannot: absolute, no fragment, no http in production but to a loopback address. */
function redirectUriProblem (uri: string, production: boolean): string | undefined {
  let url: URL
  try {
    url = new URL(uri)
  } catch {
    return 'is not an absolute URI'
  }
  if (!SCHEME.test(uri)) return 'is not an absolute URI'
  if (uri.includes('#')) return 'has a fragment'
  if (['javascript:', 'data:', 'file:', 'vbscript:'].includes(url.protocol)) return 'is not a redirect URI'
  if (url.protocol === 'http:' && production && !LOOPBACK.has(url.hostname)) return 'is http in production (https, a loopback address or an app scheme only)'
  return undefined
}

/** Where the identity providers are, from OIDC_PROVIDERS and one group of OIDC_<ID>_… variables per id. */
function oidcSettings (e: Env, source: Record<string, string | undefined>): Config['oidc'] {
  const production = e.NODE_ENV === 'production'
  const ids = (e.OIDC_PROVIDERS ?? '').split(',').map(s => s.trim()).filter(Boolean)
  const providers = ids.map((id): OidcProviderSettings => {
    if (!PROVIDER_ID.test(id)) throw new ConfigError(`OIDC_PROVIDERS: "${id}" is not an id of lower-case letters, digits and dashes`)
    const prefix = `OIDC_${id.toUpperCase().replace(/-/g, '_')}_`
    const read = (name: string, required: boolean) => {
      const value = source[prefix + name]?.trim()
      if (required && !value) throw new ConfigError(`${prefix}${name} is required for the provider "${id}" of OIDC_PROVIDERS`)
      return value || undefined
    }
    const issuerText = read('ISSUER', true)!
    let issuer: URL
    try {
      issuer = new URL(issuerText)
    } catch {
      throw new ConfigError(`${prefix}ISSUER: "${issuerText}" is not a URL`)
    }
    if (issuer.protocol !== 'https:' && !(issuer.protocol === 'http:' && !production)) {
      throw new ConfigError(`${prefix}ISSUER must be an https URL${production ? ' in production' : ' (http only outside production)'}`)
    }
    const scopes = read('SCOPES', false) ?? 'openid email profile'
    if (!scopes.split(/\s+/).includes('openid')) throw new ConfigError(`${prefix}SCOPES must include openid`)
    return { id, name: read('NAME', false) ?? id, issuer, clientId: read('CLIENT_ID', true)!, clientSecret: read('CLIENT_SECRET', true)!, scopes }
  })
  if (new Set(ids).size !== ids.length) throw new ConfigError('OIDC_PROVIDERS names a provider twice')
  const redirectUris = (e.OAUTH_REDIRECT_URIS ?? '').split(',').map(s => s.trim()).filter(Boolean)
  for (const uri of redirectUris) {
    const problem = redirectUriProblem(uri, production)
    if (problem) throw new ConfigError(`OAUTH_REDIRECT_URIS: "${uri}" ${problem}`)
  }
  const publicUrl = (e.PUBLIC_URL ?? `http://localhost:${e.PORT}`).replace(/\/+$/, '')
  // outside production the demo page (served at /demo) may sign in through the providers too
  if (!production && !redirectUris.includes(`${publicUrl}/demo`)) redirectUris.push(`${publicUrl}/demo`)
  return { publicUrl, publicUrlSet: e.PUBLIC_URL !== undefined, providers, redirectUris }
}

/** Webhooks: both WEBHOOK_URL and WEBHOOK_SECRET, or neither; WEBHOOK_EVENTS from the known list. */
function webhookSettings (e: Env): Config['webhooks'] {
  if ((e.WEBHOOK_URL === undefined) !== (e.WEBHOOK_SECRET === undefined)) {
    throw new ConfigError('Set both WEBHOOK_URL and WEBHOOK_SECRET, or neither')
  }
  if (e.WEBHOOK_SECRET !== undefined) {
    const bytes = Buffer.from(e.WEBHOOK_SECRET.slice('whsec_'.length), 'base64').length
    if (bytes < 24 || bytes > 64) throw new ConfigError('WEBHOOK_SECRET must be whsec_ followed by base64 of 24 to 64 random bytes (e.g. whsec_$(openssl rand -base64 32))')
  }
  const names = e.WEBHOOK_EVENTS === undefined ? [...WEBHOOK_EVENTS] : e.WEBHOOK_EVENTS.split(',').map(s => s.trim()).filter(Boolean)
  // a list of nothing is a slip, not a way to turn webhooks off (unset WEBHOOK_URL for that)
  if (names.length === 0) throw new ConfigError(`WEBHOOK_EVENTS names no event; leave it unset for all of ${WEBHOOK_EVENTS.join(', ')}`)
  for (const name of names) {
    if (!(WEBHOOK_EVENTS as readonly string[]).includes(name)) throw new ConfigError(`WEBHOOK_EVENTS: "${name}" is not one of ${WEBHOOK_EVENTS.join(', ')}`)
  }
  return { url: e.WEBHOOK_URL, secret: e.WEBHOOK_SECRET, events: names as WebhookEventType[] }
}

/** Reads the environment once; a bad value stops the start with a message naming the variable. */
export function loadConfig (source: Record<string, string | undefined> = process.env): Config {
  const known = Object.keys(EnvSchema.properties)
  const input: Record<string, string> = {}
  for (const key of known) {
    const value = source[key]
    if (value !== undefined && value !== '') input[key] = value
  }
  if (!validateEnv(input)) {
    const problems = (validateEnv.errors ?? []).map(e => {
      const name = e.instancePath.slice(1) || String(e.params.missingProperty ?? '')
      return `${name} ${e.message ?? 'is invalid'}`
    })
    throw new ConfigError(`Invalid configuration: ${[...new Set(problems)].join('; ')}`)
  }
  const e = input as unknown as Env
  if (e.NODE_ENV === 'production' && !e.COOKIE_SECURE) {
    throw new ConfigError('COOKIE_SECURE=false is for plain-http development only; production refuses to start with it')
  }
  const corsOrigins = e.CORS_ORIGINS.split(',').map(o => o.trim().replace(/\/$/, '')).filter(Boolean)
  for (const origin of corsOrigins) {
    if (!/^https?:\/\/[^/\s]+$/.test(origin)) throw new ConfigError(`CORS_ORIGINS: "${origin}" is not an origin like https://app.example.com`)
  }
  if (e.JWT_PRIVATE_KEY && e.JWT_PRIVATE_KEY_FILE) {
    throw new ConfigError('Set only one of JWT_PRIVATE_KEY and JWT_PRIVATE_KEY_FILE')
  }
  return {
    env: e.NODE_ENV,
    port: e.PORT,
    host: e.HOST,
    databaseUrl: e.DATABASE_URL,
    // A few connections per core: postgres.js pipelines queries on each, and Postgres runs no more
    // statements at once than there are cores (README, benchmarks).
    databasePoolSize: e.DATABASE_POOL_SIZE ?? 2 * availableParallelism(),
    dataDir: e.DATA_DIR,
    logLevel: e.LOG_LEVEL,
    trustProxy: parseTrustProxy(e.TRUST_PROXY),
    jwt: {
      // PEM in a single-line env var often arrives with literal "\n"
      privateKeyPem: e.JWT_PRIVATE_KEY?.replace(/\\n/g, '\n'),
      privateKeyFile: e.JWT_PRIVATE_KEY_FILE,
      issuer: e.JWT_ISSUER,
      audience: e.JWT_AUDIENCE,
      accessTokenTtl: e.ACCESS_TOKEN_TTL,
    },
    refresh: {
      ttl: e.REFRESH_TOKEN_TTL,
      rememberTtl: e.REFRESH_TOKEN_REMEMBER_TTL,
      absoluteTtl: e.SESSION_ABSOLUTE_TTL,
      reuseGraceSeconds: e.REFRESH_REUSE_GRACE_SECONDS,
      secret: e.REFRESH_TOKEN_SECRET === undefined ? undefined : decodeSecret(e.REFRESH_TOKEN_SECRET, 'REFRESH_TOKEN_SECRET'),
      previousSecrets: (e.REFRESH_TOKEN_PREVIOUS_SECRETS ?? '').split(',').map(s => s.trim()).filter(Boolean)
        .map((s, i) => decodeSecret(s, `REFRESH_TOKEN_PREVIOUS_SECRETS (secret ${i + 1})`)),
    },
    passwordMinLength: e.PASSWORD_MIN_LENGTH,
    rateLimit: {
      loginIp: e.RATE_LIMIT_LOGIN_IP,
      registerIp: e.RATE_LIMIT_REGISTER_IP,
      refreshIp: e.RATE_LIMIT_REFRESH_IP,
      ip: e.RATE_LIMIT_IP,
      loginAccount: e.RATE_LIMIT_LOGIN_ACCOUNT,
      forgot: e.RATE_LIMIT_FORGOT,
      forgotIp: e.RATE_LIMIT_FORGOT_IP,
    },
    cookieSecure: e.COOKIE_SECURE,
    corsOrigins,
    docsEnabled: e.DOCS_ENABLED,
    redisUrl: e.REDIS_URL,
    redisKeyPrefix: e.REDIS_KEY_PREFIX,
    previousPublicKeysPem: splitPems(e.JWT_PREVIOUS_PUBLIC_KEYS?.replace(/\\n/g, '\n') ?? ''),
    metrics: { enabled: e.METRICS_ENABLED, token: e.METRICS_TOKEN },
    webauthn: webauthnSettings(e),
    oidc: oidcSettings(e, source),
    mfa: {
      issuer: e.MFA_ISSUER,
      encryptionKey: e.MFA_ENCRYPTION_KEY === undefined ? undefined : decodeSecret(e.MFA_ENCRYPTION_KEY, 'MFA_ENCRYPTION_KEY', MFA_KEY_BYTES),
    },
    auditRetentionDays: e.AUDIT_RETENTION_DAYS,
    webhooks: webhookSettings(e),
    pruneIntervalSeconds: e.PRUNE_INTERVAL_SECONDS,
    shutdownTimeoutSeconds: e.SHUTDOWN_TIMEOUT_SECONDS,
    mail: {
      // links in emails come from here, never from the request's Host
      appUrl: (e.APP_URL ?? `http://localhost:${e.PORT}`).replace(/\/+$/, ''),
      appUrlSet: e.APP_URL !== undefined,
      smtpUrl: e.SMTP_URL,
      from: e.MAIL_FROM,
      subjects: { reset: e.MAIL_SUBJECT_RESET, verify: e.MAIL_SUBJECT_VERIFY },
      resetTtl: e.RESET_TOKEN_TTL,
      verifyTtl: e.VERIFY_TOKEN_TTL,
      emailChangeTtl: e.EMAIL_CHANGE_TOKEN_TTL,
      requireVerification: e.REQUIRE_EMAIL_VERIFICATION,
    },
  }
}

/**
 * What a serving instance needs beyond the settings themselves (the command-line tools do not send
 * mail nor check passkeys): in production, real mail, real links and the origins of passkeys.
 */
export function assertServable (config: Config): void {
  if (config.env !== 'production') return
  if (!config.mail.smtpUrl) throw new ConfigError('SMTP_URL is required in production: reset and verification links must not end up in logs')
  if (!config.mail.appUrlSet) throw new ConfigError('APP_URL is required in production: it is the base of the links in emails (e.g. https://app.example.com)')
  if (config.oidc.providers.length > 0 && !config.oidc.publicUrlSet) {
    throw new ConfigError('PUBLIC_URL is required in production when OIDC_PROVIDERS is set: providers call back to <PUBLIC_URL>/oauth/<id>/callback')
  }
  // browsers refuse a passkey ceremony whose RP ID is neither the page's host nor a parent domain of it;
  // checked here, not when the settings are read: the command-line tools need no origins
  const { rpId, origins } = config.webauthn
  if (origins.length === 0) throw new ConfigError('WEBAUTHN_ORIGINS (or APP_URL) must name the origins passkeys are used from in production')
  // an Android app's origin names no host: its tie to the RP ID is the site's Digital Asset Links file
  const outside = origins.filter(o => !ANDROID_ORIGIN.test(o)).filter(o => { const host = new URL(o).hostname; return host !== rpId && !host.endsWith(`.${rpId}`) })
  if (outside.length) throw new ConfigError(`WEBAUTHN_RP_ID "${rpId}" must be the host, or a parent domain of the host, of every WEBAUTHN_ORIGINS origin (not of ${outside.join(', ')})`)
}
