import { randomUUID } from 'node:crypto'
import { sql } from 'drizzle-orm'
import t from 'tap'
import { LOGIN_WINDOW_MS } from '../src/auth/attempt-throttle.js'
import { MFA_CHALLENGE_MAX_FAILURES, MFA_CHALLENGE_TTL_MS } from '../src/auth/mfa.js'
import { WEBAUTHN_CHALLENGE_TTL_MS } from '../src/auth/passkeys.js'
import { uuidv7 } from '../src/ids.js'
import { pruneExpired } from '../src/repositories/prune.js'
import { assertProblem, bearer, build, call, claims, enableTotp, fakeClock, login, loginMfa, newAccount, register, rows, testDatabase, totp, type TokenBody } from './helper.js'
import { callback, callbackFor, exchange, flow, oidcEnv, person, pkce, authorize } from './oidc-flow.js'
import { startTestProvider } from './oidc-provider.js'
import { softAuthenticator } from './webauthn-authenticator.js'

const DAY = 24 * 3600_000
const STEP = 30_000
const rules = { attemptWindowMs: LOGIN_WINDOW_MS, mfaChallengeMaxFailures: MFA_CHALLENGE_MAX_FAILURES, auditRetentionDays: 90 }
const prune = async (atMs: number, over: Partial<typeof rules> = {}) => pruneExpired((await testDatabase()).db, new Date(atMs), { ...rules, ...over })
const iso = (ms: number) => new Date(ms).toISOString()

t.test('purges ended sessions and stale counts, keeps everything still usable', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock, env: { REFRESH_TOKEN_TTL: '3600', SESSION_ABSOLUTE_TTL: '86400' } })
  const refresh = async (token: string) => (await app.inject({ method: 'POST', url: '/refresh', payload: { refreshToken: token } })).json() as TokenBody

  const revoked = (await register(app)).tokens
  await app.inject({ method: 'POST', url: '/logout', payload: { refreshToken: revoked.refreshToken } })
  const idle = (await register(app)).tokens
  const account = newAccount()
  const live = (await register(app, account)).tokens
  await app.inject({ method: 'POST', url: '/login', payload: { email: 'nobody@example.com', password: 'wrong password' } })

  clock.advance(3000_000)
  const liveNext = await refresh(live.refreshToken)
  clock.advance(2 * DAY - 3000_000 - 60_000)
  // keep the live session going past the others' ends (absolute lifetime is a day, so a new sign-in)
  const again = (await app.inject({ method: 'POST', url: '/login', payload: { email: account.email, password: account.password } })).json() as TokenBody

  const removed = await prune(clock.now())
  t.ok(removed.sessions >= 3, `sessions removed: ${removed.sessions}`)
  t.ok(removed.throttles >= 1, 'stale login counts removed')
  const ids = [revoked.user.id, idle.user.id, live.user.id]
  const left = await rows<{ user_id: string }>(sql`select user_id from sessions where user_id in (${sql.join(ids.map(id => sql`${id}::uuid`), sql`, `)})`)
  t.same(left.map(r => r.user_id), [live.user.id], 'only the new session of the live user is left')
  t.equal((await app.inject({ url: '/me', headers: bearer(again.accessToken) })).statusCode, 200)
  t.equal((await refresh(again.refreshToken)).tokenType, 'Bearer', 'the new session still refreshes')
  t.ok(liveNext.refreshToken)
  // the first session of the live user ended with its absolute lifetime a day ago; the new one stays
  const [{ n }] = await rows<{ n: number }>(sql`select count(*)::int as n from sessions where user_id = ${live.user.id}`) as [{ n: number }]
  t.equal(n, 1)
})

t.test('purges mfaTokens that are spent, expired or voided by wrong codes, keeps a live one', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock })
  const { body: account, tokens } = await register(app)
  const { secret } = await enableTotp(app, tokens.accessToken, clock.now())
  const mfaToken = async () => {
    const res = await login(app, { email: account.email, password: account.password })
    return assertProblem(t, res, 403, 'mfa_required').mfaToken as string
  }
  // a code that is none of the window's, so it is wrong whatever the step
  const wrongCode = () => {
    const window = [-1, 0, 1].map(k => totp(secret, clock.now() + k * STEP))
    return ['000000', '111111', '222222', '333333'].find(c => !window.includes(c))!
  }

  // each is unusable for one reason only when the prune runs
  const expired = await mfaToken()
  clock.advance(MFA_CHALLENGE_TTL_MS + STEP)
  const voided = await mfaToken()
  for (let i = 0; i < MFA_CHALLENGE_MAX_FAILURES; i++) assertProblem(t, await loginMfa(app, { mfaToken: voided, code: wrongCode() }), 403, 'mfa_code_invalid')
  const spent = await mfaToken()
  t.equal((await loginMfa(app, { mfaToken: spent, code: totp(secret, clock.now()) })).statusCode, 200, 'signed in with the spent one')
  const live = await mfaToken()

  const challenges = async () => (await rows<{ n: number }>(sql`select count(*)::int as n from mfa_challenges where user_id = ${tokens.user.id}::uuid`))[0]!.n
  t.equal(await challenges(), 4, 'one row per sign-in that waited for a second factor')
  const removed = await prune(clock.now())
  t.equal(removed.mfaChallenges, 3, 'the spent, the expired and the voided one')
  t.equal(await challenges(), 1, 'the live one is left')
  t.equal((await prune(clock.now())).mfaChallenges, 0, 'nothing more on a second run')

  clock.advance(STEP)
  for (const token of [expired, voided, spent]) assertProblem(t, await loginMfa(app, { mfaToken: token, code: totp(secret, clock.now()) }), 400, 'mfa_token_invalid')
  const signedIn = await loginMfa(app, { mfaToken: live, code: totp(secret, clock.now()) })
  t.equal(signedIn.statusCode, 200, 'the live one still signs in')
  t.equal((await prune(clock.now())).mfaChallenges, 1, 'and once spent it goes too')
  t.equal(await challenges(), 0)
})

t.test('purges passkey challenges past their time, keeps a live one usable', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock })
  const { tokens } = await register(app)
  const origin = app.config.webauthn.origins[0]!
  const registrationOptions = async () => {
    const res = await call(app, 'POST', '/passkeys/register/options', tokens.accessToken)
    t.equal(res.statusCode, 200)
    return res.json()
  }
  const signInOptions = async () => (await app.inject({ method: 'POST', url: '/login/passkey/options' })).json()
  const challenges = async () => (await rows<{ challenge: string }>(sql`select challenge from webauthn_challenges order by challenge`)).map(r => r.challenge)

  const expiredRegistration = await registrationOptions()
  const expiredSignIn = await signInOptions()
  clock.advance(WEBAUTHN_CHALLENGE_TTL_MS + 1000)
  const liveRegistration = await registrationOptions()
  const liveSignIn = await signInOptions()
  const before = await challenges()
  for (const c of [expiredRegistration, expiredSignIn, liveRegistration, liveSignIn]) t.ok(before.includes(c.challenge), 'each options request left its challenge')

  const removed = await prune(clock.now())
  t.equal(removed.webauthnChallenges, 2, 'the two past their five minutes')
  const left = await challenges()
  t.notOk(left.includes(expiredRegistration.challenge) || left.includes(expiredSignIn.challenge), 'the expired ones are gone')
  t.ok(left.includes(liveRegistration.challenge) && left.includes(liveSignIn.challenge), 'the live ones are left')
  t.equal((await prune(clock.now())).webauthnChallenges, 0, 'nothing more on a second run')

  // the live registration challenge still works, once; the pruned one is refused as any unknown challenge
  const authenticator = softAuthenticator()
  const refused = await call(app, 'POST', '/passkeys/register', tokens.accessToken, { response: authenticator.register(expiredRegistration, { origin }) })
  assertProblem(t, refused, 400, 'passkey_invalid')
  const added = await call(app, 'POST', '/passkeys/register', tokens.accessToken, { response: authenticator.register(liveRegistration, { origin }) })
  t.equal(added.statusCode, 201, 'the live challenge still registers a passkey')
  t.notOk((await challenges()).includes(liveRegistration.challenge), 'and is deleted when used')

  clock.advance(WEBAUTHN_CHALLENGE_TTL_MS + 1)
  t.equal((await prune(clock.now())).webauthnChallenges, 1, 'the sign-in challenge goes once it expires')
  t.same(await challenges(), [])
})

t.test('purges identity-provider flows and one-time codes past their time, keeps live ones usable', async t => {
  const op = await startTestProvider({ redirectUris: [callbackFor('test')] })
  t.teardown(() => op.stop())
  const clock = fakeClock()
  const app = await build(t, { clock, env: oidcEnv({ test: op }) })
  const someone = person(op)
  op.signInAs = someone.sub
  const count = async (table: 'oauth_flows' | 'oauth_codes') => (await rows<{ n: number }>(sql`select count(*)::int as n from ${sql.identifier(table)}`))[0]!.n
  const started = async () => {
    const { verifier, challenge } = pkce()
    const res = await authorize(app, 'test', { challenge })
    t.equal(res.statusCode, 302)
    return { verifier, location: String(res.headers.location) }
  }

  // a sign-in never finished (ten minutes) and a code never exchanged (sixty seconds), then live ones
  await started()
  const expiredCode = await flow(app, op, someone.sub)
  clock.advance(10 * 60_000 + 30_000)
  const liveFlow = await started()
  const liveCode = await flow(app, op, someone.sub)
  clock.advance(30_000)
  t.equal(await count('oauth_flows'), 2)
  t.equal(await count('oauth_codes'), 2)

  const removed = await prune(clock.now())
  t.equal(removed.oauthFlows, 1, 'the flow past its ten minutes')
  t.equal(removed.oauthCodes, 1, 'the code past its sixty seconds')
  t.equal(await count('oauth_flows'), 1)
  t.equal(await count('oauth_codes'), 1)
  const again = await prune(clock.now())
  t.same([again.oauthFlows, again.oauthCodes], [0, 0], 'nothing more on a second run')

  assertProblem(t, await exchange(app, { code: expiredCode.location.searchParams.get('code'), codeVerifier: expiredCode.verifier }), 400, 'oauth_code_invalid')
  t.equal((await exchange(app, { code: liveCode.location.searchParams.get('code'), codeVerifier: liveCode.verifier })).statusCode, 200, 'the live code still signs in')
  const back = await callback(app, await op.follow(liveFlow.location))
  t.ok(new URL(String(back.headers.location)).searchParams.get('code'), 'the live flow still finishes')
  t.same([await count('oauth_flows'), await count('oauth_codes')], [0, 1], 'a finished flow is deleted; its code waits for the exchange')
})

t.test('the security history: events older than AUDIT_RETENTION_DAYS go, in batches; newer ones stay', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock, env: { AUDIT_RETENTION_DAYS: '30' } })
  t.equal(app.config.auditRetentionDays, 30)
  const retention = { auditRetentionDays: app.config.auditRetentionDays }
  const { body: account, tokens } = await register(app)
  const registeredAt = clock.now()
  clock.advance(10 * DAY)
  const signedIn = (await login(app, account)).json() as TokenBody
  clock.advance(20 * DAY + 60_000)
  const keptFrom = clock.now() - 30 * DAY

  // more old rows than one batch holds, and two either side of the line
  const bulkUser = randomUUID()
  await rows(sql`
    insert into audit_events (id, at, type, user_id, detail)
    select gen_random_uuid(), ${iso(keptFrom - DAY)}::timestamptz, 'login_failure', ${bulkUser}::uuid, '{}'::jsonb from generate_series(1, 2500)`)
  const edgeUser = randomUUID()
  await rows(sql`insert into audit_events (id, at, type, user_id) values
    (${uuidv7(keptFrom - 1)}::uuid, ${iso(keptFrom - 1)}::timestamptz, 'logout', ${edgeUser}::uuid),
    (${uuidv7(keptFrom)}::uuid, ${iso(keptFrom)}::timestamptz, 'logout', ${edgeUser}::uuid)`)
  const typesOf = async (userId: string) => (await rows<{ type: string, at_ms: number }>(sql`
    select type, extract(epoch from at)::float8 * 1000 as at_ms from audit_events where user_id = ${userId} order by id`))

  const removed = await prune(clock.now(), retention)
  t.ok(removed.auditEvents >= 2502, `removed ${removed.auditEvents}`)
  t.same(await typesOf(bulkUser), [], 'every batch went')
  t.same(await typesOf(edgeUser), [{ type: 'logout', at_ms: keptFrom }], 'one just older goes; one at the line stays')
  t.same(await typesOf(tokens.user.id), [{ type: 'login_success', at_ms: registeredAt + 10 * DAY }], 'the registration a month ago went, the sign-in ten days later stays')
  t.equal((await prune(clock.now(), retention)).auditEvents, 0, 'nothing more on a second run')

  const now = (await login(app, account)).json() as TokenBody
  const history = (await call(app, 'GET', '/me/security-events', now.accessToken)).json() as { events: { type: string, sessionId: string }[] }
  t.same(history.events.map(e => e.sessionId), [now, signedIn].map(s => claims(s.accessToken).sid), 'the history shows what is left: this sign-in and the one of twenty days ago')
})

t.test('the outbox: delivered, skipped and given-up messages go a day after they finished; pending ones stay', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock })
  const { body: account } = await register(app)
  await app.mailer.flush()
  const [verification] = await rows<{ id: string, status: string }>(sql`select id, status from outbox where recipient = ${account.email} and kind = 'verify_email'`)
  t.equal(verification!.status, 'sent')

  clock.advance(DAY + 60_000)
  const now = clock.now()
  const tag = `outbox-${randomUUID()}@example.com`
  const row = (status: string, finishedMs: number | null, createdMs: number) => {
    const id = uuidv7(createdMs)
    return {
      id,
      insert: rows(sql`insert into outbox (id, kind, recipient, data, created_at, next_attempt_at, attempts, status, finished_at)
        values (${id}::uuid, 'notice', ${tag}, '{"notice":"password_changed"}'::jsonb, ${iso(createdMs)}::timestamptz, ${iso(now + 3600_000)}::timestamptz, 1, ${status},
                ${finishedMs === null ? null : iso(finishedMs)}::timestamptz)`),
    }
  }
  const gone = [row('failed', now - 2 * DAY, now - 3 * DAY), row('skipped', now - DAY - 3600_000, now - 2 * DAY), row('sent', now - DAY - 1, now - 2 * DAY)]
  // still pending after three days: the sender is still trying (it gives up after a day, then it is "failed")
  const kept = [row('sent', now - DAY + 3600_000, now - DAY), row('pending', null, now - 3 * DAY), row('pending', null, now - 30 * DAY)]
  for (const r of [...gone, ...kept]) await r.insert

  const removed = await prune(now)
  t.ok(removed.outbox >= gone.length + 1, `removed ${removed.outbox}`)
  const left = (await rows<{ id: string }>(sql`select id from outbox where recipient = ${tag} order by id`)).map(r => r.id)
  t.same(left, kept.map(r => r.id).sort(), 'the pending ones and the one finished within the day stay')
  t.same(await rows(sql`select id from outbox where id = ${verification!.id}`), [], 'the verification mail sent a day ago went')
  t.equal((await prune(now)).outbox, 0, 'nothing more on a second run')
})
