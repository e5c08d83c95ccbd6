import { sql, type SQL } from 'drizzle-orm'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import postgres from 'postgres'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { generateSigningKey, type SigningKey } from '../src/auth/keys.js'
import { totpAt } from './totp.js'
import { loadConfig, type Config } from '../src/config.js'
import { openDatabase, type DatabaseHandle } from '../src/db/client.js'
import { pgliteDatabase } from './pglite.js'

export type Test = import('tap').Test

/**
 * Settings for tests: limits high enough that only the tests about limits meet them.
 * Everything goes through loadConfig, as in production.
 */
export function testConfig (env: Record<string, string> = {}): Config {
  return loadConfig({
    NODE_ENV: 'test',
    // development mail (.eml files) lands here, not in the working tree
    DATA_DIR: testDataDir(),
    LOG_LEVEL: 'info',
    PASSWORD_MIN_LENGTH: '15',
    RATE_LIMIT_LOGIN_IP: '10000',
    RATE_LIMIT_REGISTER_IP: '10000',
    RATE_LIMIT_REFRESH_IP: '10000',
    RATE_LIMIT_IP: '10000',
    RATE_LIMIT_LOGIN_ACCOUNT: '10000',
    RATE_LIMIT_FORGOT: '10000',
    RATE_LIMIT_FORGOT_IP: '10000',
    PRUNE_INTERVAL_SECONDS: '0',
    REFRESH_TOKEN_SECRET: testRefreshSecret,
    MFA_ENCRYPTION_KEY: testMfaKey,
    ...env,
  })
}

/** This file's refresh token secret, set as production sets it. */
export const testRefreshSecret = randomBytes(32).toString('base64')
/** This file's MFA encryption key, set as production sets it. */
export const testMfaKey = randomBytes(32).toString('base64')

let dataDir: string | undefined
/** This file's data folder, removed when the file ends. */
export function testDataDir (): string {
  if (!dataDir) {
    const dir = dataDir = mkdtempSync(join(tmpdir(), 'auth-test-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  }
  return dataDir
}

let database: Promise<DatabaseHandle> | undefined

/** A new, empty database on the server named by TEST_DATABASE_URL, dropped when the file ends. */
export async function createServerDatabase (adminUrl: string): Promise<string> {
  const name = `auth_test_${process.pid}_${randomBytes(4).toString('hex')}`
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} })
  await admin.unsafe(`create database ${name}`)
  t.teardown(async () => {
    await admin.unsafe(`drop database if exists ${name} with (force)`)
    await admin.end()
  })
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  return url.toString()
}

/**
 * One database per test file (tap runs files in parallel): an embedded PGlite, or a fresh database
 * on the server named by TEST_DATABASE_URL, dropped when the file ends.
 */
export function testDatabase (): Promise<DatabaseHandle> {
  database ??= (async () => {
    const adminUrl = process.env.TEST_DATABASE_URL
    const handle = adminUrl ? await openDatabase({ url: await createServerDatabase(adminUrl), max: 4 }) : await pgliteDatabase()
    // registered after the drop, so it runs before it
    t.teardown(() => handle.close())
    await handle.migrate()
    return handle
  })()
  return database
}

let key: SigningKey | undefined
export const testKey = () => (key ??= generateSigningKey())

export interface FakeClock { now: () => number, advance: (ms: number) => void, set: (ms: number) => void }
export function fakeClock (start = Date.now()): FakeClock {
  let current = start
  return { now: () => current, advance: ms => { current += ms }, set: ms => { current = ms } }
}

export interface BuildOptions { env?: Record<string, string>, clock?: FakeClock, signingKey?: SigningKey, /** another database than the file's */ database?: DatabaseHandle }

/** The app as production builds it, on this file's database; closed when the test ends. Log lines are kept. */
export async function build (test: Test, options: BuildOptions = {}) {
  const logs: string[] = []
  const logStream = new Writable({ write (chunk, _enc, cb) { logs.push(String(chunk)); cb() } })
  const app = await buildApp({
    config: testConfig(options.env),
    database: options.database ?? await testDatabase(),
    signingKey: options.signingKey ?? testKey(),
    clock: options.clock?.now ?? Date.now,
    logStream,
  })
  test.teardown(() => app.close())
  await app.ready()
  return Object.assign(app, { logs })
}
export type TestApp = Awaited<ReturnType<typeof build>>

let counter = 0
/** A fresh, valid registration body; emails are unique within the file's database. */
export function newAccount (over: Record<string, unknown> = {}) {
  counter++
  const id = `${process.pid}x${counter}x${randomBytes(3).toString('hex')}`
  return { email: `user${id}@example.com`, password: `a long passphrase ${id}`, ...over } as { email: string, password: string, [k: string]: unknown }
}

export async function register (app: TestApp, body: ReturnType<typeof newAccount> = newAccount()) {
  const res = await app.inject({ method: 'POST', url: '/register', payload: body })
  if (res.statusCode !== 201) throw new Error(`register failed: ${res.statusCode} ${res.body}`)
  return { body, tokens: res.json() as TokenBody }
}

export interface TokenBody {
  tokenType: string
  accessToken: string
  expiresIn: number
  refreshToken: string
  refreshExpiresIn: number
  user: { id: string, email: string, username: string | null, name: string | null, createdAt: string }
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
/** The payload of a JWT, unverified. */
export const claims = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>

/** Asserts an RFC 9457 problem with the given status and code, and returns its body. */
export function assertProblem (test: Test, res: { statusCode: number, headers: Record<string, unknown>, body: string }, status: number, code: string) {
  test.equal(res.statusCode, status, `status ${status} (${res.body.slice(0, 200)})`)
  test.match(String(res.headers['content-type']), /^application\/problem\+json/)
  const body = JSON.parse(res.body)
  test.equal(body.code, code)
  test.equal(body.status, status)
  test.equal(body.type, `urn:problem:${code}`)
  test.type(body.title, 'string')
  return body
}

/** Rows of a raw query on this file's database, whichever driver runs it. */
export async function rows<T = Record<string, unknown>> (query: SQL): Promise<T[]> {
  const { db } = await testDatabase()
  const result = await db.execute(query) as unknown as { rows?: T[] } | T[]
  return Array.isArray(result) ? result : result.rows ?? []
}

// The API as a client calls it: one typed helper per route the tests drive, answers as they come.
type Headers = Record<string, string>
type Method = 'GET' | 'PATCH' | 'POST' | 'DELETE'
export const post = (app: TestApp, url: string, payload?: unknown, headers: Headers = {}) =>
  app.inject({ method: 'POST', url, headers, ...(payload === undefined ? {} : { payload: payload as object }) })

/** Any route with a bearer token. */
export const call = (app: TestApp, method: Method, url: string, token: string, payload?: object, headers: Headers = {}) =>
  app.inject({ method, url, headers: { ...bearer(token), ...headers }, ...(payload ? { payload } : {}) })
export const me = (app: TestApp, token: string, headers: Headers = {}) => call(app, 'GET', '/me', token, undefined, headers)
export const login = (app: TestApp, body: unknown, headers: Headers = {}) => post(app, '/login', body, headers)
export const refresh = (app: TestApp, refreshToken: unknown, headers: Headers = {}) => post(app, '/refresh', { refreshToken }, headers)
export const logout = (app: TestApp, payload?: object, headers: Headers = {}) => post(app, '/logout', payload, headers)
export const listSessions = (app: TestApp, token: string) => call(app, 'GET', '/sessions', token)
export const revokeSession = (app: TestApp, token: string, id: string, headers: Headers = {}) => call(app, 'DELETE', `/sessions/${id}`, token, undefined, headers)
export const forgotPassword = (app: TestApp, email: string, headers: Headers = {}) => post(app, '/password/forgot', { email }, headers)
export const resetPassword = (app: TestApp, token: string, newPassword: string) => post(app, '/password/reset', { token, newPassword })
export const verifyEmail = (app: TestApp, token: string) => post(app, '/email/verify', { token })
export const loginMfa = (app: TestApp, body: unknown, headers: Headers = {}) => post(app, '/login/mfa', body, headers)

/** The code an authenticator app shows for `secret` at `atMs` (RFC 6238, SHA-1, 6 digits, 30 s). */
export const totp = (secret: string, atMs: number) => totpAt(secret, atMs)

/**
 * Turns TOTP on for the account of `accessToken`: enrols and confirms with the code of `atMs`. The secret,
 * the recovery codes, and the step the confirmation used (its code is spent).
 */
export async function enableTotp (app: TestApp, accessToken: string, atMs: number = app.clock()) {
  const enrolled = await call(app, 'POST', '/mfa/totp/enroll', accessToken)
  if (enrolled.statusCode !== 200) throw new Error(`enroll failed: ${enrolled.statusCode} ${enrolled.body}`)
  const { secret } = enrolled.json() as { secret: string }
  const confirmed = await call(app, 'POST', '/mfa/totp/confirm', accessToken, { code: totp(secret, atMs) })
  if (confirmed.statusCode !== 200) throw new Error(`confirm failed: ${confirmed.statusCode} ${confirmed.body}`)
  return { secret, recoveryCodes: (confirmed.json() as { recoveryCodes: string[] }).recoveryCodes }
}

/** A new account made an admin in the database (as `npm run user:role` does); the role is read from the session on every request, so its token serves at once. */
export async function registerAdmin (app: TestApp) {
  const registered = await register(app)
  await rows(sql`update users set role = 'admin' where id = ${registered.tokens.user.id}`)
  return registered
}

/** Signs in with email and password (and any other login fields); the tokens, or an error naming the answer. */
export async function signIn (app: TestApp, account: { email: string, password: string }, extra: Record<string, unknown> = {}, headers: Headers = {}) {
  const res = await login(app, { email: account.email, password: account.password, ...extra }, headers)
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.statusCode} ${res.body}`)
  return res.json() as TokenBody
}

/** Replaces a method of `target` until the test ends (or `restore()` is called): failure paths forced by stubbing one decorator. */
export function stub<T extends object, K extends keyof T> (test: Test, target: T, key: K, replacement: T[K]) {
  const original = target[key]
  target[key] = replacement
  const restore = () => { target[key] = original }
  test.teardown(restore)
  return { original, restore }
}

/** A six-digit code that no step within two of `atMs` has for `secret`: a wrong code, whatever the window. */
export function wrongCode (secret: string, atMs: number) {
  const near = new Set([-2, -1, 0, 1, 2].map(k => totp(secret, atMs + k * 30_000)))
  for (let n = Number(totp(secret, atMs)) + 1; ; n++) {
    const code = String(n % 1_000_000).padStart(6, '0')
    if (!near.has(code)) return code
  }
}

/** A new account with TOTP on (enrolled and confirmed with the code of `atMs`): its registration, secret and recovery codes. */
export async function totpAccount (app: TestApp, atMs: number = app.clock()) {
  const { body: account, tokens } = await register(app)
  return { account, tokens, ...await enableTotp(app, tokens.accessToken, atMs) }
}

/** The first step of signing in to an account with TOTP: the mfaToken of /login's 403 mfa_required. */
export async function mfaTokenOf (app: TestApp, account: { email: string, password: string }, extra: Record<string, unknown> = {}, headers: Headers = {}) {
  const res = await login(app, { email: account.email, password: account.password, ...extra }, headers)
  const body = res.json() as { code?: string, mfaToken?: string }
  if (res.statusCode !== 403 || body.code !== 'mfa_required') throw new Error(`expected mfa_required: ${res.statusCode} ${res.body}`)
  return body.mfaToken!
}
