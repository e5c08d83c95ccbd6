import { randomBytes, randomUUID } from 'node:crypto'
import { sql } from 'drizzle-orm'
import t from 'tap'
import {
  assertProblem, build, call, claims, enableTotp, fakeClock, listSessions, login, loginMfa, me, mfaTokenOf, newAccount, refresh, register, rows, signIn, totp, totpAccount, wrongCode,
  type Test, type TestApp,
} from './helper.js'

// Two-factor sign-in from the account's side: enrolment, confirmation, recovery codes, turning it off, the admin reset.

const STEP = 30_000
const RECOVERY_CODE = /^[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}$/

const enroll = (app: TestApp, token: string) => call(app, 'POST', '/mfa/totp/enroll', token)
const confirm = (app: TestApp, token: string, code: unknown) => call(app, 'POST', '/mfa/totp/confirm', token, { code })
const regenerate = (app: TestApp, token: string, code: string) => call(app, 'POST', '/mfa/recovery-codes', token, { code })
const disable = (app: TestApp, token: string, code: string) => call(app, 'DELETE', '/mfa/totp', token, { code })
const resetMfa = (app: TestApp, token: string, id: string) => call(app, 'DELETE', `/admin/users/${id}/mfa`, token)
const mfaOf = async (app: TestApp, token: string) => (await me(app, token)).json().mfa as { totp: boolean, recoveryCodesLeft: number }
const secretOf = async (app: TestApp, token: string) => (await enroll(app, token)).json().secret as string
const recoveryCodesOf = (res: { json: () => unknown }) => (res.json() as { recoveryCodes: string[] }).recoveryCodes
const audits = (app: TestApp, event?: string) => app.logs.map(l => JSON.parse(l) as Record<string, unknown>).filter(l => l.audit !== undefined && (event === undefined || l.audit === event))
const proof = (accessToken: string) => { const c = claims(accessToken); return { aal: c.aal, amr: c.amr } }
/** Signs in with the password and finishes with a recovery code. */
const signInWithRecoveryCode = async (app: TestApp, account: { email: string, password: string }, recoveryCode: string) =>
  loginMfa(app, { mfaToken: await mfaTokenOf(app, account), recoveryCode })

/** A registered user made admin; the role is read from the session on each request, so its token serves at once. */
async function admin (app: TestApp) {
  const { tokens } = await register(app)
  await rows(sql`update users set role = 'admin' where id = ${tokens.user.id}`)
  return tokens
}

function assertRecoveryCodes (t: Test, codes: string[]) {
  t.equal(codes.length, 10)
  t.equal(new Set(codes).size, 10, 'all different')
  for (const code of codes) t.match(code, RECOVERY_CODE)
}

t.test('enroll: a pending secret, the otpauth URL with every parameter, an SVG QR code; sign-in unchanged until confirmed', async t => {
  const app = await build(t)
  const { body: account, tokens } = await register(app)
  const res = await enroll(app, tokens.accessToken)
  t.equal(res.statusCode, 200)
  t.equal(res.headers['cache-control'], 'no-store')
  const body = res.json()
  t.same(Object.keys(body).sort(), ['otpauthUrl', 'qrSvg', 'secret'])
  t.match(body.secret, /^[A-Z2-7]{32}$/, '160 bits in base32, no padding')
  t.equal(body.otpauthUrl, `otpauth://totp/Auth%20API:${account.email.replace('@', '%40')}?secret=${body.secret}&issuer=Auth%20API&algorithm=SHA1&digits=6&period=30`)
  t.match(body.qrSvg, /^<svg[\s>]/)
  t.match(body.qrSvg, /<\/svg>\s*$/)

  t.same(await mfaOf(app, tokens.accessToken), { totp: false, recoveryCodesLeft: 0, passkeys: 0 }, 'pending is not on')
  const plain = await signIn(app, account)
  t.same(proof(plain.accessToken), { aal: 'aal1', amr: ['pwd'] }, 'the password alone still signs in')
  t.match(audits(app, 'mfa_totp_enrolment_started'), [{ userId: tokens.user.id, sessionId: claims(tokens.accessToken).sid }])

  for (const [method, url] of [['POST', '/mfa/totp/enroll'], ['POST', '/mfa/totp/confirm'], ['POST', '/mfa/recovery-codes'], ['DELETE', '/mfa/totp']] as const) {
    const anonymous = await app.inject({ method, url, payload: { code: '123456' } })
    assertProblem(t, anonymous, 401, 'invalid_token')
    t.equal(anonymous.headers['www-authenticate'], 'Bearer realm="api"', `${method} ${url}`)
  }
  assertProblem(t, await enroll(app, 'not.a.token'), 401, 'invalid_token')
})

t.test('MFA_ISSUER names the service, percent-encoded in the label and the issuer parameter', async t => {
  const app = await build(t, { env: { MFA_ISSUER: 'Acme & Co: Staging' } })
  const email = `ada+${randomBytes(4).toString('hex')}@example.com`
  const { tokens } = await register(app, newAccount({ email }))
  const { secret, otpauthUrl } = (await enroll(app, tokens.accessToken)).json()
  const issuer = 'Acme%20%26%20Co%3A%20Staging'
  t.equal(otpauthUrl, `otpauth://totp/${issuer}:${email.replace('+', '%2B').replace('@', '%40')}?secret=${secret}&issuer=${issuer}&algorithm=SHA1&digits=6&period=30`)
  t.equal(new URL(otpauthUrl).searchParams.get('issuer'), 'Acme & Co: Staging')
})

t.test('a second enrol replaces the pending secret; once on, enrol is 409 and the active secret stays', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock })
  const { body: account, tokens } = await register(app)
  const first = await secretOf(app, tokens.accessToken)
  const second = await secretOf(app, tokens.accessToken)
  t.not(first, second)
  assertProblem(t, await confirm(app, tokens.accessToken, totp(first, clock.now())), 403, 'mfa_code_invalid')
  t.equal((await confirm(app, tokens.accessToken, totp(second, clock.now()))).statusCode, 200)

  const again = await enroll(app, tokens.accessToken)
  assertProblem(t, again, 409, 'mfa_already_enabled')
  t.equal(again.headers['cache-control'], 'no-store')
  assertProblem(t, await confirm(app, tokens.accessToken, totp(second, clock.now())), 409, 'mfa_not_enrolling')
  clock.advance(STEP)
  t.equal((await loginMfa(app, { mfaToken: await mfaTokenOf(app, account), code: totp(second, clock.now()) })).statusCode, 200, 'the confirmed secret still signs in')
})

t.test('confirm: 409 with nothing pending, 403 for a wrong code; then ten recovery codes, this session aal2, every other session signed out', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock })
  const { body: account, tokens: here } = await register(app)
  const phone = await signIn(app, account)
  const laptop = await signIn(app, account)
  assertProblem(t, await confirm(app, here.accessToken, '123456'), 409, 'mfa_not_enrolling')

  const secret = await secretOf(app, here.accessToken)
  assertProblem(t, await confirm(app, here.accessToken, wrongCode(secret, clock.now())), 403, 'mfa_code_invalid')
  assertProblem(t, await confirm(app, here.accessToken, 'abcdef'), 403, 'mfa_code_invalid')
  assertProblem(t, await confirm(app, here.accessToken, ''), 400, 'validation_failed')
  assertProblem(t, await call(app, 'POST', '/mfa/totp/confirm', here.accessToken, {}), 400, 'validation_failed')
  t.equal((await me(app, phone.accessToken)).statusCode, 200, 'a refused confirmation changes nothing')

  const code = totp(secret, clock.now())
  const res = await confirm(app, here.accessToken, `${code.slice(0, 3)} ${code.slice(3)}`)
  t.equal(res.statusCode, 200, res.body)
  t.equal(res.headers['cache-control'], 'no-store')
  const recoveryCodes = recoveryCodesOf(res)
  assertRecoveryCodes(t, recoveryCodes)

  const listed = (await listSessions(app, here.accessToken)).json().sessions as { current: boolean, aal: string }[]
  t.match(listed, [{ current: true, aal: 'aal2' }])
  t.equal(listed.length, 1, 'only this session is left')
  const next = await refresh(app, here.refreshToken)
  t.equal(next.statusCode, 200)
  t.same(proof(next.json().accessToken), { aal: 'aal2', amr: ['pwd', 'otp'] }, 'the next refresh carries it')
  t.equal(claims(next.json().accessToken).sid, claims(here.accessToken).sid)
  for (const other of [phone, laptop]) {
    assertProblem(t, await me(app, other.accessToken), 401, 'session_revoked')
    assertProblem(t, await refresh(app, other.refreshToken), 401, 'session_revoked')
  }
  const reasons = await rows<{ id: string, revoked_reason: string | null }>(sql`select id, revoked_reason from sessions where user_id = ${here.user.id}`)
  t.same(Object.fromEntries(reasons.map(r => [r.id, r.revoked_reason])), {
    [claims(here.accessToken).sid as string]: null, [claims(phone.accessToken).sid as string]: 'mfa_enabled', [claims(laptop.accessToken).sid as string]: 'mfa_enabled',
  })
  t.same(await mfaOf(app, here.accessToken), { totp: true, recoveryCodesLeft: 10, passkeys: 0 })

  // only keyed hashes of the recovery codes are stored
  const [stored] = await rows<{ recovery_codes: string[] }>(sql`select * from totp_factors where user_id = ${here.user.id}`)
  t.equal(stored!.recovery_codes.length, 10)
  const text = JSON.stringify(stored).toLowerCase()
  for (const c of recoveryCodes) t.notOk(text.includes(c) || text.includes(c.replace(/-/g, '')), 'no recovery code in the database')
  t.notOk(text.includes(secret.toLowerCase()), 'nor the secret')

  t.match(audits(app, 'mfa_enabled'), [{ userId: here.user.id, otherSessionsEnded: 2 }])
  t.match(audits(app, 'mfa_code_failed'), [{ route: 'confirm', userId: here.user.id }, { route: 'confirm' }])
})

t.test('confirm takes a code of the step before or after, not two away; the confirming step is spent', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock })
  const at = (secret: string, steps: number) => totp(secret, clock.now() + steps * STEP)
  const early = (await register(app)).tokens
  const earlySecret = await secretOf(app, early.accessToken)
  assertProblem(t, await confirm(app, early.accessToken, at(earlySecret, -2)), 403, 'mfa_code_invalid')
  assertProblem(t, await confirm(app, early.accessToken, at(earlySecret, 2)), 403, 'mfa_code_invalid')
  t.equal((await confirm(app, early.accessToken, at(earlySecret, -1))).statusCode, 200, 'the step before')

  const { body: account, tokens: late } = await register(app)
  const secret = await secretOf(app, late.accessToken)
  t.equal((await confirm(app, late.accessToken, at(secret, 1))).statusCode, 200, 'the step after')
  const mfaToken = await mfaTokenOf(app, account)
  assertProblem(t, await loginMfa(app, { mfaToken, code: at(secret, 1) }), 403, 'mfa_code_invalid')
  assertProblem(t, await loginMfa(app, { mfaToken, code: at(secret, 0) }), 403, 'mfa_code_invalid')
  clock.advance(STEP)
  t.equal((await loginMfa(app, { mfaToken, code: at(secret, 1) })).statusCode, 200, 'the next step is taken')
})

t.test('recovery codes: each works once, in any case, with spaces or without hyphens; /me counts them down', async t => {
  const app = await build(t)
  const { account, tokens, recoveryCodes: codes } = await totpAccount(app)
  const first = await signInWithRecoveryCode(app, account, codes[0]!)
  t.equal(first.statusCode, 200)
  t.same(proof(first.json().accessToken), { aal: 'aal2', amr: ['pwd', 'rec'] })
  t.same(await mfaOf(app, tokens.accessToken), { totp: true, recoveryCodesLeft: 9, passkeys: 0 })
  assertProblem(t, await signInWithRecoveryCode(app, account, codes[0]!), 403, 'mfa_code_invalid')
  assertProblem(t, await signInWithRecoveryCode(app, account, codes[0]!.toUpperCase()), 403, 'mfa_code_invalid')
  t.equal((await mfaOf(app, tokens.accessToken)).recoveryCodesLeft, 9, 'a refused code spends nothing')

  const typed = [codes[1]!.toUpperCase(), codes[2]!.replace(/-/g, ' '), codes[3]!.replace(/-/g, ''), ` ${codes[4]!.toUpperCase().replace(/-/g, ' - ')} `]
  for (const [i, code] of typed.entries()) {
    t.equal((await signInWithRecoveryCode(app, account, code)).statusCode, 200, JSON.stringify(code))
    t.equal((await mfaOf(app, tokens.accessToken)).recoveryCodesLeft, 8 - i)
  }
  assertProblem(t, await signInWithRecoveryCode(app, account, codes[1]!), 403, 'mfa_code_invalid')
  assertProblem(t, await signInWithRecoveryCode(app, account, '0000-0000-0000'), 403, 'mfa_code_invalid')
  const [row] = await rows<{ n: number }>(sql`select cardinality(recovery_codes)::int as n from totp_factors where user_id = ${tokens.user.id}`)
  t.equal(row!.n, 5)
  t.same(audits(app, 'mfa_recovery_code_used').map(l => l.recoveryCodesLeft), [9, 8, 7, 6, 5])
})

t.test('POST /mfa/recovery-codes: a current code or a recovery code gives ten new codes; the old ones are void', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock })
  const { account, tokens, secret, recoveryCodes: old } = await totpAccount(app)
  clock.advance(STEP)
  const code = totp(secret, clock.now())
  const viaCode = await regenerate(app, tokens.accessToken, code)
  t.equal(viaCode.statusCode, 200, viaCode.body)
  t.equal(viaCode.headers['cache-control'], 'no-store')
  const fresh = recoveryCodesOf(viaCode)
  assertRecoveryCodes(t, fresh)
  t.notOk(fresh.some(c => old.includes(c)))
  assertProblem(t, await regenerate(app, tokens.accessToken, code), 403, 'mfa_code_invalid')
  assertProblem(t, await signInWithRecoveryCode(app, account, old[1]!), 403, 'mfa_code_invalid')

  const viaRecovery = await regenerate(app, tokens.accessToken, fresh[0]!.toUpperCase())
  t.equal(viaRecovery.statusCode, 200)
  const newest = recoveryCodesOf(viaRecovery)
  assertRecoveryCodes(t, newest)
  t.notOk(newest.some(c => fresh.includes(c)))
  t.same(await mfaOf(app, tokens.accessToken), { totp: true, recoveryCodesLeft: 10, passkeys: 0 })
  assertProblem(t, await regenerate(app, tokens.accessToken, fresh[0]!), 403, 'mfa_code_invalid')
  assertProblem(t, await regenerate(app, tokens.accessToken, fresh[1]!), 403, 'mfa_code_invalid')
  assertProblem(t, await regenerate(app, tokens.accessToken, wrongCode(secret, clock.now())), 403, 'mfa_code_invalid')
  assertProblem(t, await call(app, 'POST', '/mfa/recovery-codes', tokens.accessToken, {}), 400, 'validation_failed')
  t.equal((await signInWithRecoveryCode(app, account, newest[0]!)).statusCode, 200)

  t.equal(audits(app, 'mfa_recovery_codes_regenerated').length, 2)
  t.match(audits(app, 'mfa_recovery_code_used'), [{ route: 'recovery-codes', userId: tokens.user.id }, { route: 'login' }])
  t.equal(audits(app, 'mfa_code_failed').filter(l => l.route === 'recovery-codes').length, 4)

  const { tokens: without } = await register(app)
  assertProblem(t, await regenerate(app, without.accessToken, '123456'), 409, 'mfa_not_enabled')
  await enroll(app, without.accessToken)
  assertProblem(t, await regenerate(app, without.accessToken, '123456'), 409, 'mfa_not_enabled')
})

t.test('DELETE /mfa/totp: with a code, 204 and back to the password alone', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock })
  const { account, tokens, secret } = await totpAccount(app)
  clock.advance(STEP)
  const waiting = await mfaTokenOf(app, account)
  assertProblem(t, await disable(app, tokens.accessToken, wrongCode(secret, clock.now())), 403, 'mfa_code_invalid')
  t.equal((await mfaOf(app, tokens.accessToken)).totp, true, 'still on')

  const res = await disable(app, tokens.accessToken, totp(secret, clock.now()))
  t.equal(res.statusCode, 204)
  t.equal(res.body, '')
  t.same(await mfaOf(app, tokens.accessToken), { totp: false, recoveryCodesLeft: 0, passkeys: 0 })
  t.same(await rows(sql`select * from totp_factors where user_id = ${tokens.user.id}`), [])
  const plain = await signIn(app, account)
  t.same(proof(plain.accessToken), { aal: 'aal1', amr: ['pwd'] }, 'the password alone signs in')
  assertProblem(t, await loginMfa(app, { mfaToken: waiting, code: totp(secret, clock.now() + STEP) }), 400, 'mfa_token_invalid')
  t.equal((await me(app, tokens.accessToken)).statusCode, 200, 'the session that turned it off goes on')
  assertProblem(t, await disable(app, tokens.accessToken, totp(secret, clock.now() + STEP)), 409, 'mfa_not_enabled')
  t.equal((await enroll(app, tokens.accessToken)).statusCode, 200, 'it can be enrolled again')
  assertProblem(t, await disable(app, tokens.accessToken, '123456'), 409, 'mfa_not_enabled')

  // with a recovery code instead
  const other = await totpAccount(app)
  t.equal((await disable(app, other.tokens.accessToken, other.recoveryCodes[3]!)).statusCode, 204)
  t.same(await mfaOf(app, other.tokens.accessToken), { totp: false, recoveryCodesLeft: 0, passkeys: 0 })
  t.equal((await login(app, { email: other.account.email, password: other.account.password })).statusCode, 200)

  t.match(audits(app, 'mfa_disabled'), [{ userId: tokens.user.id }, { userId: other.tokens.user.id }])
  t.match(audits(app, 'mfa_recovery_code_used'), [{ route: 'disable', userId: other.tokens.user.id }])
  t.match(audits(app, 'mfa_code_failed'), [{ route: 'disable', userId: tokens.user.id }])
})

t.test('wrong codes on the account routes count toward the per-account sign-in limit', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock, env: { RATE_LIMIT_LOGIN_ACCOUNT: '3' } })
  const { account, tokens, secret } = await totpAccount(app)
  clock.advance(STEP)
  const wrong = wrongCode(secret, clock.now())
  assertProblem(t, await regenerate(app, tokens.accessToken, wrong), 403, 'mfa_code_invalid')
  assertProblem(t, await disable(app, tokens.accessToken, wrong), 403, 'mfa_code_invalid')
  assertProblem(t, await regenerate(app, tokens.accessToken, 'aaaa-bbbb-cccc'), 403, 'mfa_code_invalid')
  const locked = await disable(app, tokens.accessToken, totp(secret, clock.now()))
  assertProblem(t, locked, 429, 'too_many_requests')
  t.equal(locked.headers['retry-after'], '900')
  assertProblem(t, await login(app, { email: account.email, password: account.password }), 429, 'too_many_requests')
  t.equal((await mfaOf(app, tokens.accessToken)).totp, true)
})

t.test('DELETE /admin/users/{id}/mfa: admins only; removes the second factor and signs the user out everywhere', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock })
  const boss = await admin(app)
  const target = await totpAccount(app)
  clock.advance(STEP)
  const second = (await loginMfa(app, { mfaToken: await mfaTokenOf(app, target.account), code: totp(target.secret, clock.now()) })).json()
  const waiting = await mfaTokenOf(app, target.account)

  const byUser = await resetMfa(app, target.tokens.accessToken, target.tokens.user.id)
  assertProblem(t, byUser, 403, 'forbidden')
  assertProblem(t, await app.inject({ method: 'DELETE', url: `/admin/users/${target.tokens.user.id}/mfa` }), 401, 'invalid_token')
  assertProblem(t, await resetMfa(app, boss.accessToken, randomUUID()), 404, 'not_found')
  assertProblem(t, await resetMfa(app, boss.accessToken, 'not-a-uuid'), 404, 'not_found')
  t.equal((await mfaOf(app, target.tokens.accessToken)).totp, true, 'nothing changed yet')

  const res = await resetMfa(app, boss.accessToken, target.tokens.user.id)
  t.equal(res.statusCode, 204)
  t.equal(res.body, '')
  for (const session of [target.tokens, second]) {
    assertProblem(t, await me(app, session.accessToken), 401, 'session_revoked')
    assertProblem(t, await refresh(app, session.refreshToken), 401, 'session_revoked')
  }
  assertProblem(t, await loginMfa(app, { mfaToken: waiting, code: totp(target.secret, clock.now() + STEP) }), 400, 'mfa_token_invalid')
  const after = await signIn(app, target.account)
  t.same(proof(after.accessToken), { aal: 'aal1', amr: ['pwd'] }, 'the password alone signs in again')
  t.same(await mfaOf(app, after.accessToken), { totp: false, recoveryCodesLeft: 0, passkeys: 0 })
  t.equal((await me(app, boss.accessToken)).statusCode, 200, 'the admin stays signed in')

  t.match(audits(app, 'admin_mfa_reset'), [{ userId: boss.user.id, targetUserId: target.tokens.user.id, removed: true, sessionsEnded: 2 }])
  t.match(audits(app, 'forbidden'), [{ userId: target.tokens.user.id }])
})

/** Every row of every table in the database, as JSON text. */
async function everyRow () {
  const tables = await rows<{ s: string, n: string }>(sql`
    select table_schema as s, table_name as n from information_schema.tables
    where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema')`)
  const dump: string[] = []
  for (const { s, n } of tables) {
    const found = await rows<{ j: string }>(sql`select row_to_json(x)::text as j from ${sql.identifier(s)}.${sql.identifier(n)} x`)
    dump.push(...found.map(r => r.j))
  }
  return { tables: tables.map(r => r.n), text: dump.join('\n').toLowerCase() }
}

/** RFC 4648 base32, as the secret is written. */
function base32Bytes (text: string) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
  const out: number[] = []
  let bits = 0
  let value = 0
  for (const c of text) {
    value = (value << 5) | alphabet.indexOf(c)
    bits += 5
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff)
      bits -= 8
    }
  }
  return Buffer.from(out)
}
/** The ways a secret could be written down: its base32 text, its bytes in hex and base64. */
const secretForms = (secret: string) => {
  const raw = base32Bytes(secret)
  return [secret, raw.toString('hex'), raw.toString('base64').replace(/=+$/, ''), raw.toString('base64url')].map(s => s.toLowerCase())
}

t.test('no secret, code, recovery code or mfaToken in any table or log line; an audit line for each event', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock })
  const boss = await admin(app)
  const { body: account, tokens } = await register(app)
  const secrets: string[] = []
  const codes: string[] = []
  const hidden: string[] = []
  const use = (code: string) => { codes.push(code); return code }

  secrets.push(await secretOf(app, tokens.accessToken))
  t.equal(base32Bytes(secrets[0]!).length, 20, '160 bits')
  const pending = await everyRow()
  t.ok(pending.text.includes(account.email), 'the scan reads the rows')
  t.ok(pending.tables.includes('totp_factors') && pending.tables.includes('sessions'), 'of every table')
  for (const form of secretForms(secrets[0]!)) t.notOk(pending.text.includes(form), 'a pending secret is not in the database')

  secrets.push(await secretOf(app, tokens.accessToken))
  assertProblem(t, await confirm(app, tokens.accessToken, use(wrongCode(secrets[1]!, clock.now()))), 403, 'mfa_code_invalid')
  const recovery = recoveryCodesOf(await confirm(app, tokens.accessToken, use(totp(secrets[1]!, clock.now()))))
  clock.advance(STEP)
  const first = await mfaTokenOf(app, account)
  assertProblem(t, await loginMfa(app, { mfaToken: first, code: use(wrongCode(secrets[1]!, clock.now())) }), 403, 'mfa_code_invalid')
  t.equal((await loginMfa(app, { mfaToken: first, code: use(totp(secrets[1]!, clock.now())) })).statusCode, 200)
  const second = await mfaTokenOf(app, account)
  t.equal((await loginMfa(app, { mfaToken: second, recoveryCode: recovery[0] })).statusCode, 200)
  clock.advance(STEP)
  const renewed = recoveryCodesOf(await regenerate(app, tokens.accessToken, use(totp(secrets[1]!, clock.now()))))
  assertProblem(t, await regenerate(app, tokens.accessToken, use(wrongCode(secrets[1]!, clock.now()))), 403, 'mfa_code_invalid')
  const third = await mfaTokenOf(app, account)
  hidden.push(first, second, third, ...[...recovery, ...renewed].flatMap(c => [c, c.replace(/-/g, '')]))

  const active = await everyRow()
  for (const secret of secrets) for (const form of secretForms(secret)) t.notOk(active.text.includes(form), 'no secret in the database')
  for (const value of hidden) t.notOk(active.text.includes(value.toLowerCase()), 'no recovery code or mfaToken in the database')

  t.equal((await disable(app, tokens.accessToken, renewed[0]!)).statusCode, 204)
  clock.advance(STEP)
  secrets.push((await enableTotp(app, tokens.accessToken, clock.now())).secret)
  t.equal((await resetMfa(app, boss.accessToken, tokens.user.id)).statusCode, 204)

  const log = app.logs.join('\n')
  const logLower = log.toLowerCase()
  for (const secret of secrets) for (const form of secretForms(secret)) t.notOk(logLower.includes(form), 'no secret in the log')
  for (const value of hidden) t.notOk(logLower.includes(value.toLowerCase()), 'no recovery code or mfaToken in the log')
  for (const code of codes) t.notOk(log.includes(`"${code}"`), 'no code in the log')

  const events = new Set(audits(app).map(l => l.audit))
  for (const event of ['mfa_totp_enrolment_started', 'mfa_enabled', 'mfa_disabled', 'mfa_recovery_code_used', 'mfa_recovery_codes_regenerated', 'admin_mfa_reset', 'mfa_code_failed']) {
    t.ok(events.has(event), `audit ${event}`)
  }
  const failed = audits(app, 'mfa_code_failed')
  t.same(failed.map(l => l.route), ['confirm', 'login', 'recovery-codes'], 'one line per wrong code')
  t.ok(failed.every(l => l.level === 40), 'at warn level')
  t.same(audits(app, 'mfa_recovery_code_used').map(l => l.route), ['login', 'disable'])
})

t.test('malformed bodies on the new routes are 4xx problems, never 5xx', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock })
  const { account, tokens } = await totpAccount(app)
  const { tokens: pending } = await register(app)
  await enroll(app, pending.accessToken)
  const mfaToken = await mfaTokenOf(app, account)
  const values: unknown[] = [null, 123456, true, {}, [], ['123456'], '', ' ', 'x'.repeat(65), '1'.repeat(64), '12-34-56', '１２３４５６', '\u0000\u0000\u0000', 'ı'.repeat(12), '🙂'.repeat(12)]
  const bodies: unknown[] = [null, [], 'text', 42, ...values.map(code => ({ code })), { code: '123456', extra: 1 }]
  const routes: [string, 'POST' | 'DELETE', string, (body: unknown) => unknown][] = [
    ['confirm', 'POST', '/mfa/totp/confirm', body => body],
    ['regenerate', 'POST', '/mfa/recovery-codes', body => body],
    ['disable', 'DELETE', '/mfa/totp', body => body],
    ['login/mfa', 'POST', '/login/mfa', body => body && typeof body === 'object' && !Array.isArray(body) ? { mfaToken, ...body } : body],
    ['login/mfa recoveryCode', 'POST', '/login/mfa', body => body && typeof body === 'object' && 'code' in body ? { mfaToken, recoveryCode: (body as { code: unknown }).code } : body],
  ]
  for (const [name, method, url, shape] of routes) {
    for (const token of [tokens.accessToken, pending.accessToken]) {
      for (const body of bodies) {
        const res = await app.inject({ method, url, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, payload: JSON.stringify(shape(body)) })
        if (res.statusCode < 400 || res.statusCode >= 500) t.fail(`${name} ${JSON.stringify(shape(body))}: ${res.statusCode} ${res.body}`)
        if (!String(res.headers['content-type']).startsWith('application/problem+json')) t.fail(`${name}: ${res.headers['content-type']}`)
      }
      const text = await app.inject({ method, url, headers: { authorization: `Bearer ${token}`, 'content-type': 'text/plain' }, payload: 'code=123456' })
      t.equal(text.statusCode, 415, `${name} as text`)
    }
  }
  t.notOk(app.logs.some(l => l.includes('"level":50')), 'nothing logged as an error')
})
