import { randomBytes } from 'node:crypto'
import { sql } from 'drizzle-orm'
import t from 'tap'
import {
  assertProblem, build, claims, fakeClock, forgotPassword, listSessions, login, loginMfa, me, mfaTokenOf, refresh, register, resetPassword, rows, stub, totp, totpAccount, wrongCode,
  type TestApp, type TokenBody,
} from './helper.js'
import { smtpServer, tokenFrom } from './smtp.js'

// The sign-in of an account with TOTP: /login pauses with mfa_required, /login/mfa finishes with a code.

const STEP = 30_000
const COOKIE = { 'x-auth-mode': 'cookie' }
const ORIGIN = 'https://app.example.com'
const TOKEN_KEYS = ['accessToken', 'expiresIn', 'refreshExpiresIn', 'refreshToken', 'tokenType', 'user']

const sessionCount = async (userId: string) => (await rows<{ n: number }>(sql`select count(*)::int as n from sessions where user_id = ${userId}`))[0]!.n
const sessionRow = async (accessToken: string) =>
  (await rows<{ aal: string, amr: string[], remember_me: boolean }>(sql`select aal, amr, remember_me from sessions where id = ${claims(accessToken).sid as string}`))[0]
const auditLines = (app: TestApp, event: string) => app.logs.map(l => JSON.parse(l) as Record<string, unknown>).filter(l => l.audit === event)
const recoveryCodesLeft = async (app: TestApp, accessToken: string) => (await me(app, accessToken)).json().mfa.recoveryCodesLeft as number

/** What an access token says the sign-in proved. */
const proof = (accessToken: string) => { const c = claims(accessToken); return { aal: c.aal, amr: c.amr } }
const TWO_FACTORS = { aal: 'aal2', amr: ['pwd', 'otp'] }

function refreshCookie (res: { headers: Record<string, unknown> }) {
  const line = ([] as string[]).concat((res.headers['set-cookie'] as string | string[] | undefined) ?? []).find(c => c.startsWith('__Host-refresh='))
  if (!line) return undefined
  const [pair, ...attrs] = line.split('; ')
  return { value: pair!.slice('__Host-refresh='.length), attrs: attrs.map(a => a.toLowerCase()) }
}

t.test('/login with the right password of an account with TOTP: 403 mfa_required with an mfaToken; no session, no tokens, no cookie', async t => {
  const app = await build(t, { env: { CORS_ORIGINS: ORIGIN } })
  const { account, tokens } = await totpAccount(app)
  const before = await sessionCount(tokens.user.id)
  const mfaTokens: string[] = []
  for (const headers of [{}, COOKIE]) {
    const res = await login(app, { email: account.email, password: account.password }, headers)
    const body = assertProblem(t, res, 403, 'mfa_required')
    t.match(body.mfaToken, /^[A-Za-z0-9_-]{43,}$/, 'at least 256 bits, base64url')
    t.same(body.methods, ['totp', 'recovery_code'])
    t.notOk('accessToken' in body || 'refreshToken' in body, 'no tokens')
    t.notOk(res.headers['set-cookie'], 'no cookie, in cookie mode either')
    t.equal(res.headers['cache-control'], 'no-store')
    mfaTokens.push(body.mfaToken)
  }
  t.not(mfaTokens[0], mfaTokens[1], 'a new mfaToken for each sign-in')
  t.equal(await sessionCount(tokens.user.id), before, 'no session was opened')

  // kept only as a hash
  const challenges = await rows(sql`select * from mfa_challenges where user_id = ${tokens.user.id}`)
  t.equal(challenges.length, 2)
  for (const token of mfaTokens) t.notOk(JSON.stringify(challenges).includes(token), 'no mfaToken in the database')
  t.equal(auditLines(app, 'login_mfa_required').length, 2)
  t.equal(auditLines(app, 'login_success').filter(l => l.userId === tokens.user.id).length, 0, 'no sign-in yet')
})

t.test('a wrong password gets the same 401 whether or not the account has TOTP', async t => {
  const app = await build(t)
  const { body: plain } = await register(app)
  const { account } = await totpAccount(app)
  const without = await login(app, { email: plain.email, password: 'not the right password' })
  const withTotp = await login(app, { email: account.email, password: 'not the right password' })
  t.same(assertProblem(t, withTotp, 401, 'invalid_credentials'), assertProblem(t, without, 401, 'invalid_credentials'))
  t.same(Object.keys(withTotp.headers).sort(), Object.keys(without.headers).sort())
  t.notOk('mfaToken' in withTotp.json())
})

t.test('/login/mfa with a code: the token response of /login, aal2 with amr pwd+otp, kept by every refresh', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock })
  const { account, secret, tokens: first } = await totpAccount(app)
  clock.advance(STEP)
  const res = await loginMfa(app, { mfaToken: await mfaTokenOf(app, account), code: totp(secret, clock.now()) })
  t.equal(res.statusCode, 200, res.body)
  t.equal(res.headers['cache-control'], 'no-store')
  const body = res.json() as TokenBody
  t.same(Object.keys(body).sort(), TOKEN_KEYS)
  t.same(body.user, first.user)
  t.equal(body.tokenType, 'Bearer')
  t.equal(body.refreshExpiresIn, 43_200, 'rememberMe was not asked for')
  t.same(proof(body.accessToken), TWO_FACTORS)
  t.equal(claims(body.accessToken).sub, first.user.id)
  t.same(await sessionRow(body.accessToken), { aal: 'aal2', amr: ['pwd', 'otp'], remember_me: false })
  const listed = (await listSessions(app, body.accessToken)).json().sessions as { current: boolean, aal: string }[]
  t.equal(listed.find(s => s.current)!.aal, 'aal2')
  t.equal((await me(app, body.accessToken)).statusCode, 200)

  let current = body
  for (let i = 0; i < 2; i++) {
    clock.advance(60_000)
    const next = await refresh(app, current.refreshToken)
    t.equal(next.statusCode, 200)
    current = next.json() as TokenBody
    t.same(proof(current.accessToken), TWO_FACTORS, `refresh ${i + 1} keeps aal and amr`)
    t.equal(claims(current.accessToken).sid, claims(body.accessToken).sid)
  }
  t.match(auditLines(app, 'login_success').at(-1), { userId: first.user.id, amr: ['pwd', 'otp'] })
})

t.test('/login/mfa with a recovery code: amr pwd+rec; rememberMe as given to /login', async t => {
  const app = await build(t, { clock: fakeClock() })
  const { account, recoveryCodes, tokens } = await totpAccount(app)
  const remembered = await loginMfa(app, { mfaToken: await mfaTokenOf(app, account, { rememberMe: true }), recoveryCode: recoveryCodes[0] })
  t.equal(remembered.statusCode, 200, remembered.body)
  const body = remembered.json() as TokenBody
  t.same(proof(body.accessToken), { aal: 'aal2', amr: ['pwd', 'rec'] })
  t.equal(body.refreshExpiresIn, 2_592_000)
  t.same(await sessionRow(body.accessToken), { aal: 'aal2', amr: ['pwd', 'rec'], remember_me: true })
  const next = (await refresh(app, body.refreshToken)).json() as TokenBody
  t.same(proof(next.accessToken), { aal: 'aal2', amr: ['pwd', 'rec'] }, 'a refresh keeps them')
  t.equal(next.refreshExpiresIn, 2_592_000, 'and stays remembered')

  const plain = await loginMfa(app, { mfaToken: await mfaTokenOf(app, account, { rememberMe: false }), recoveryCode: recoveryCodes[1] })
  t.equal(plain.json().refreshExpiresIn, 43_200)
  t.same(await sessionRow(plain.json().accessToken), { aal: 'aal2', amr: ['pwd', 'rec'], remember_me: false })
  t.equal(await recoveryCodesLeft(app, tokens.accessToken), 8)
  t.match(auditLines(app, 'mfa_recovery_code_used'), [{ userId: tokens.user.id, route: 'login', recoveryCodesLeft: 9 }, { route: 'login', recoveryCodesLeft: 8 }])
})

t.test('cookie mode on /login/mfa: the refresh token only in the cookie; the cookie refreshes at aal2', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock, env: { CORS_ORIGINS: ORIGIN } })
  const { account, secret, recoveryCodes } = await totpAccount(app)
  clock.advance(STEP)
  const res = await loginMfa(app, { mfaToken: await mfaTokenOf(app, account), code: totp(secret, clock.now()) }, COOKIE)
  t.equal(res.statusCode, 200, res.body)
  t.same(Object.keys(res.json()).sort(), ['accessToken', 'expiresIn', 'tokenType', 'user'])
  const cookie = refreshCookie(res)!
  t.match(cookie.value, /^[A-Za-z0-9_-]{71}$/)
  t.same(cookie.attrs.sort(), ['httponly', 'path=/', 'samesite=strict', 'secure'], 'a session cookie without rememberMe')
  t.notOk(res.body.includes(cookie.value))
  t.same(proof(res.json().accessToken), TWO_FACTORS)

  const refreshed = await app.inject({ method: 'POST', url: '/refresh', headers: { ...COOKIE, origin: ORIGIN, cookie: `__Host-refresh=${cookie.value}` } })
  t.equal(refreshed.statusCode, 200, refreshed.body)
  t.notOk(refreshed.json().refreshToken)
  t.not(refreshCookie(refreshed)!.value, cookie.value, 'rotated')
  t.same(proof(refreshed.json().accessToken), TWO_FACTORS)

  const remembered = await loginMfa(app, { mfaToken: await mfaTokenOf(app, account, { rememberMe: true }), recoveryCode: recoveryCodes[0] }, COOKIE)
  t.equal(remembered.statusCode, 200)
  t.ok(refreshCookie(remembered)!.attrs.includes('max-age=2592000'), 'persistent: rememberMe was given to /login')
})

t.test('the mfaToken is single use', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock })
  const { account, secret, recoveryCodes, tokens } = await totpAccount(app)
  clock.advance(STEP)
  const mfaToken = await mfaTokenOf(app, account)
  t.equal((await loginMfa(app, { mfaToken, code: totp(secret, clock.now()) })).statusCode, 200)
  clock.advance(STEP)
  const code = totp(secret, clock.now())
  assertProblem(t, await loginMfa(app, { mfaToken, code }), 400, 'mfa_token_invalid')
  assertProblem(t, await loginMfa(app, { mfaToken, recoveryCode: recoveryCodes[0] }), 400, 'mfa_token_invalid')
  t.equal(await recoveryCodesLeft(app, tokens.accessToken), 10, 'the recovery code was not spent')
  t.equal((await loginMfa(app, { mfaToken: await mfaTokenOf(app, account), code })).statusCode, 200, 'nor the code')
})

t.test('the mfaToken expires after five minutes', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock })
  const { account, secret, recoveryCodes, tokens } = await totpAccount(app)
  const early = await mfaTokenOf(app, account)
  const late = await mfaTokenOf(app, account)
  clock.advance(5 * 60_000 - 1000)
  t.equal((await loginMfa(app, { mfaToken: early, code: totp(secret, clock.now()) })).statusCode, 200, 'good until the end of the fifth minute')
  clock.advance(1000)
  assertProblem(t, await loginMfa(app, { mfaToken: late, recoveryCode: recoveryCodes[0] }), 400, 'mfa_token_invalid')
  t.equal(await recoveryCodesLeft(app, tokens.accessToken), 10, 'an expired token spends nothing')
})

t.test('five wrong codes void the mfaToken: the sixth attempt is refused even with the right code', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock })
  const { account, secret, tokens } = await totpAccount(app)
  clock.advance(STEP)
  const mfaToken = await mfaTokenOf(app, account)
  const wrong = wrongCode(secret, clock.now())
  for (let i = 1; i <= 5; i++) {
    const body = assertProblem(t, await loginMfa(app, { mfaToken, code: wrong }), 403, 'mfa_code_invalid')
    if (i === 5) t.match(body.detail, /too many wrong codes/)
  }
  const code = totp(secret, clock.now())
  assertProblem(t, await loginMfa(app, { mfaToken, code }), 400, 'mfa_token_invalid')
  assertProblem(t, await loginMfa(app, { mfaToken, recoveryCode: 'aaaa-bbbb-cccc' }), 400, 'mfa_token_invalid')
  const [row] = await rows<{ failures: number, used_at: unknown }>(sql`select failures, used_at from mfa_challenges where user_id = ${tokens.user.id}`)
  t.same(row, { failures: 5, used_at: null })
  t.equal(auditLines(app, 'mfa_code_failed').length, 5, 'one audit line per wrong code')
  t.equal((await loginMfa(app, { mfaToken: await mfaTokenOf(app, account), code })).statusCode, 200, 'the refused right code was not spent')
})

t.test('an unknown mfaToken is 400; exactly one of code and recoveryCode, or 400 validation_failed', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock })
  const { account, secret, recoveryCodes } = await totpAccount(app)
  clock.advance(STEP)
  const code = totp(secret, clock.now())
  for (const unknown of ['x'.repeat(43), randomBytes(32).toString('base64url'), 'short']) {
    assertProblem(t, await loginMfa(app, { mfaToken: unknown, code }), 400, 'mfa_token_invalid')
  }
  const mfaToken = await mfaTokenOf(app, account)
  for (const body of [{ mfaToken, code, recoveryCode: recoveryCodes[0] }, { mfaToken }, { code }, { mfaToken, code, extra: 1 }, { mfaToken: '', code }, { mfaToken, code: '' }, { mfaToken, code: 123456 }]) {
    const res = await loginMfa(app, body)
    t.equal(res.statusCode, 400, JSON.stringify(body))
    t.equal(res.json().code, 'validation_failed')
  }
  assertProblem(t, await loginMfa(app, { mfaToken, code: 'abcdef' }), 403, 'mfa_code_invalid')
  t.equal((await loginMfa(app, { mfaToken, code })).statusCode, 200, 'the refused bodies spent nothing')
})

t.test('codes: the current step and one either side; two away refused; a step once accepted never again, nor an earlier one', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock })
  const { account, secret } = await totpAccount(app)
  clock.advance(10 * STEP)
  const at = (steps: number) => totp(secret, clock.now() + steps * STEP)
  let mfaToken = await mfaTokenOf(app, account)
  assertProblem(t, await loginMfa(app, { mfaToken, code: at(-2) }), 403, 'mfa_code_invalid')
  assertProblem(t, await loginMfa(app, { mfaToken, code: at(2) }), 403, 'mfa_code_invalid')
  t.equal((await loginMfa(app, { mfaToken, code: at(-1) })).statusCode, 200, 'the step before')

  mfaToken = await mfaTokenOf(app, account)
  assertProblem(t, await loginMfa(app, { mfaToken, code: at(-1) }), 403, 'mfa_code_invalid')
  t.equal((await loginMfa(app, { mfaToken, code: at(1) })).statusCode, 200, 'the step after')

  mfaToken = await mfaTokenOf(app, account)
  assertProblem(t, await loginMfa(app, { mfaToken, code: at(1) }), 403, 'mfa_code_invalid')
  assertProblem(t, await loginMfa(app, { mfaToken, code: at(0) }), 403, 'mfa_code_invalid')
  clock.advance(STEP)
  t.equal((await loginMfa(app, { mfaToken, code: at(1) })).statusCode, 200, 'a later step')
})

/** `fn`, each call held until `n` calls have got their answer: requests that all pass a check before any acts on it. */
function together<A extends unknown[], R> (fn: (...args: A) => Promise<R>, n: number) {
  let held: (() => void)[] = []
  return async (...args: A) => {
    const result = await fn(...args)
    await new Promise<void>(resolve => {
      held.push(resolve)
      if (held.length === n) { held.forEach(release => release()); held = [] }
    })
    return result
  }
}

t.test('/login/mfa at once with one mfaToken: exactly one session, and the losers spend nothing', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock })
  const { account, secret, recoveryCodes, tokens } = await totpAccount(app)
  clock.advance(STEP)
  const before = await sessionCount(tokens.user.id)
  const findChallenge = app.mfa.findChallenge.bind(app.mfa)

  // one right code, three requests, all past the mfaToken check before any spends it
  const three = stub(t, app.mfa, 'findChallenge', together(findChallenge, 3))
  const mfaToken = await mfaTokenOf(app, account)
  const code = totp(secret, clock.now())
  const racers = await Promise.all([1, 2, 3].map(() => loginMfa(app, { mfaToken, code })))
  three.restore()
  const statuses = racers.map(r => r.statusCode)
  t.equal(statuses.filter(s => s === 200).length, 1, `one winner (${statuses.join(' ')})`)
  t.ok(statuses.every(s => s === 200 || s === 400 || s === 403), 'the others are refused')
  t.equal(await sessionCount(tokens.user.id), before + 1)

  // two recovery codes with one mfaToken: the code that loses is not spent
  const two = stub(t, app.mfa, 'findChallenge', together(findChallenge, 2))
  const second = await mfaTokenOf(app, account)
  const pair = await Promise.all(recoveryCodes.slice(0, 2).map(recoveryCode => loginMfa(app, { mfaToken: second, recoveryCode })))
  two.restore()
  t.same(pair.map(r => r.statusCode).sort(), [200, 400])
  t.equal(await sessionCount(tokens.user.id), before + 2)
  t.equal(await recoveryCodesLeft(app, tokens.accessToken), 9, 'only the winner\'s code was spent')
  const loser = recoveryCodes[pair.findIndex(r => r.statusCode !== 200)]!
  t.equal((await loginMfa(app, { mfaToken: await mfaTokenOf(app, account), recoveryCode: loser })).statusCode, 200, 'the other still works')
})

t.test('per-account limit: the password step counts until the second factor succeeds', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock, env: { RATE_LIMIT_LOGIN_ACCOUNT: '4' } })
  const { account, secret } = await totpAccount(app)
  clock.advance(STEP)
  const mfaTokens: string[] = []
  for (let i = 0; i < 4; i++) mfaTokens.push(await mfaTokenOf(app, account))
  const locked = await login(app, { email: account.email, password: account.password })
  assertProblem(t, locked, 429, 'too_many_requests')
  t.equal(locked.headers['retry-after'], '900')
  t.equal(locked.headers['ratelimit-limit'], '4')
  const second = await loginMfa(app, { mfaToken: mfaTokens[3], code: totp(secret, clock.now()) })
  assertProblem(t, second, 429, 'too_many_requests')
  t.equal(second.headers['retry-after'], '900')
})

t.test('per-account limit: wrong codes count; once locked, both steps answer 429 even when right; a completed sign-in clears the count', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock, env: { RATE_LIMIT_LOGIN_ACCOUNT: '4' } })
  const { account, secret } = await totpAccount(app)
  clock.advance(STEP)
  const mfaToken = await mfaTokenOf(app, account)
  for (let i = 0; i < 3; i++) assertProblem(t, await loginMfa(app, { mfaToken, code: wrongCode(secret, clock.now()) }), 403, 'mfa_code_invalid')
  const code = totp(secret, clock.now())
  const locked = await loginMfa(app, { mfaToken, code })
  assertProblem(t, locked, 429, 'too_many_requests')
  t.equal(locked.headers['retry-after'], '900')
  t.equal(locked.headers['ratelimit-remaining'], '0')
  const password = await login(app, { email: account.email, password: account.password })
  assertProblem(t, password, 429, 'too_many_requests')
  t.equal(password.headers['retry-after'], '900')

  // once the window has passed: the code refused while locked was never checked, so it was not spent
  clock.advance(15 * 60_000)
  const again = await mfaTokenOf(app, account)
  assertProblem(t, await loginMfa(app, { mfaToken: again, code: wrongCode(secret, clock.now()) }), 403, 'mfa_code_invalid')
  t.equal((await loginMfa(app, { mfaToken: again, code: totp(secret, clock.now()) })).statusCode, 200)
  // cleared: three failures and a password step fit under the limit again (not cleared, the third would lock)
  for (let i = 0; i < 3; i++) assertProblem(t, await login(app, { email: account.email, password: 'wrong password' }), 401, 'invalid_credentials')
  assertProblem(t, await login(app, { email: account.email, password: account.password }), 403, 'mfa_required')
  assertProblem(t, await login(app, { email: account.email, password: account.password }), 429, 'too_many_requests')
})

t.test('/login/mfa shares the per-IP limit of /login', async t => {
  const app = await build(t, { env: { RATE_LIMIT_LOGIN_IP: '3' } })
  const { account, secret } = await totpAccount(app)
  const mfaToken = await mfaTokenOf(app, account)
  const wrong = wrongCode(secret, Date.now())
  t.equal((await loginMfa(app, { mfaToken, code: wrong })).statusCode, 403)
  t.equal((await loginMfa(app, { mfaToken, code: wrong })).statusCode, 403)
  const limited = await loginMfa(app, { mfaToken, code: wrong })
  assertProblem(t, limited, 429, 'too_many_requests')
  t.ok(Number(limited.headers['retry-after']) > 0)
  assertProblem(t, await login(app, { email: account.email, password: account.password }), 429, 'too_many_requests')
})

t.test('a password reset does not remove TOTP: the next sign-in still asks for a code', async t => {
  const smtp = await smtpServer(t)
  const APP_URL = 'https://app.example.test'
  const clock = fakeClock()
  const app = await build(t, { clock, env: { SMTP_URL: smtp.url, APP_URL } })
  const { account, secret, tokens } = await totpAccount(app)
  // someone who knew the old password and is half-way through signing in
  const pending = await mfaTokenOf(app, account)
  t.equal((await forgotPassword(app, account.email)).statusCode, 202)
  const token = tokenFrom(await smtp.next(account.email, 'Reset your password'), APP_URL, '/reset-password')
  const newPassword = 'a brand new passphrase after the reset'
  t.equal((await resetPassword(app, token, newPassword)).statusCode, 204)
  assertProblem(t, await me(app, tokens.accessToken), 401, 'session_revoked')
  clock.advance(STEP)
  assertProblem(t, await loginMfa(app, { mfaToken: pending, code: totp(secret, clock.now()) }), 400, 'mfa_token_invalid')

  const res = await login(app, { email: account.email, password: newPassword })
  const { mfaToken } = assertProblem(t, res, 403, 'mfa_required')
  t.notOk(res.headers['set-cookie'])
  clock.advance(STEP)
  const done = await loginMfa(app, { mfaToken, code: totp(secret, clock.now() + STEP) })
  t.equal(done.statusCode, 200)
  t.same(proof(done.json().accessToken), TWO_FACTORS)
  t.same((await me(app, done.json().accessToken)).json().mfa, { totp: true, recoveryCodesLeft: 10, passkeys: 0 })
})

t.test('signing out everywhere also voids a sign-in waiting for its second factor', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock })
  const { account, secret, tokens } = await totpAccount(app)
  const pending = await mfaTokenOf(app, account)
  const out = await app.inject({ method: 'POST', url: '/logout', headers: { authorization: `Bearer ${tokens.accessToken}` }, payload: { scope: 'global' } })
  t.equal(out.statusCode, 204)
  clock.advance(STEP)
  assertProblem(t, await loginMfa(app, { mfaToken: pending, code: totp(secret, clock.now()) }), 400, 'mfa_token_invalid')
  t.equal((await rows<{ n: number }>(sql`select count(*)::int as n from mfa_challenges where user_id = ${claims(tokens.accessToken).sub as string}`))[0]!.n, 0, 'no pending sign-in left')
})
