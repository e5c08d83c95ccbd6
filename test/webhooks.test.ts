import { sql } from 'drizzle-orm'
import t from 'tap'
import { Webhook } from 'standardwebhooks'
import {
  bearer, build, call, claims, fakeClock, logout, newAccount, post, refresh, register, revokeSession, rows, signIn, stub, verifyEmail, type FakeClock, type Test, type TestApp,
} from './helper.js'
import { smtpServer, tokenFrom } from './smtp.js'
import { newWebhookSecret, webhookReceiver, type Delivery } from './webhook-receiver.js'

const APP_URL = 'https://app.example.test'
type Receiver = Awaited<ReturnType<typeof webhookReceiver>>

async function hooksApp (t: Test, hooks: Receiver, secret: string, env: Record<string, string> = {}, clock?: FakeClock) {
  return build(t, { env: { WEBHOOK_URL: hooks.url, WEBHOOK_SECRET: secret, APP_URL, ...env }, ...(clock ? { clock } : {}) })
}

/** The webhook rows queued about one user, oldest first. */
const queuedFor = (userId: string) => rows<{ id: string, status: string, attempts: number, last_error: string | null, type: string }>(sql`
  select id, status, attempts, last_error, data->>'type' as type from outbox
  where kind = 'webhook' and data->'data'->'user'->>'id' = ${userId} order by created_at, id`)

const sid = (accessToken: string) => String(claims(accessToken).sid)
/** A delivery as [type, session id or null], for comparing sets of them. */
const summary = (d: Delivery) => `${d.event!.type} ${d.event!.data.session?.id ?? '-'}`
const about = (userId: string) => (d: Delivery) => d.event?.data.user.id === userId

/** Admins are made as an operator makes them (the role set in the database), then sign in again. */
async function admin (app: TestApp) {
  const { body: account, tokens } = await register(app)
  await rows(sql`update users set role = 'admin' where id = ${tokens.user.id}`)
  return signIn(app, account)
}

t.test('every event type arrives once, signed per Standard Webhooks, with the user (and session) it is about', async t => {
  const secret = newWebhookSecret()
  const hooks = await webhookReceiver(t, secret)
  const smtp = await smtpServer(t)
  const app = await hooksApp(t, hooks, secret, { SMTP_URL: smtp.url })
  const boss = await admin(app)

  const account = newAccount()
  const started = Date.now()
  const { tokens } = await register(app, account)
  const userId = tokens.user.id
  const s1 = sid(tokens.accessToken)
  let seen = hooks.accepted().length
  /** What arrived about the user since the last step, once the sender has handled everything due. */
  const step = async (label: string, expected: string[]) => {
    await app.mailer.flush()
    const fresh = hooks.accepted().slice(seen).filter(about(userId))
    seen = hooks.accepted().length
    t.same(fresh.map(summary).sort(), expected.sort(), label)
    return fresh
  }

  const [created, firstSession] = (await step('sign-up: the user and its first session', ['user.created -', `session.created ${s1}`]))
    .sort((a, b) => a.event!.type.localeCompare(b.event!.type)).reverse()
  t.same(created!.event, {
    type: 'user.created',
    timestamp: created!.event!.timestamp,
    data: { user: { id: userId, email: account.email, username: null, name: null, role: 'user', emailVerified: false, createdAt: tokens.user.createdAt } },
  }, 'the body: type, timestamp and the user as the API shows it, nothing more')
  t.ok(Date.parse(created!.event!.timestamp) >= started - 1000 && Date.parse(created!.event!.timestamp) <= Date.now(), 'timestamp: when it happened')
  t.same(firstSession!.event!.data, { user: created!.event!.data.user, session: { id: s1 } })
  for (const d of [created!, firstSession!]) {
    t.match(d.headers, { 'content-type': 'application/json', 'webhook-signature': /^v1,[A-Za-z0-9+/=]{44}$/ })
    t.ok(Math.abs(Number(d.headers['webhook-timestamp']) - Date.now() / 1000) < 30, 'webhook-timestamp: the time of the attempt, in seconds')
    t.same(JSON.parse(d.body), d.event, 'what verify returns is the body sent')
  }

  t.equal((await verifyEmail(app, tokenFrom(await smtp.next(account.email, 'Verify your email address'), APP_URL, '/verify-email'))).statusCode, 204)
  const [verified] = await step('email verified', ['user.updated -'])
  t.equal(verified!.event!.data.user.emailVerified, true)

  t.equal((await call(app, 'PATCH', '/me', tokens.accessToken, { name: 'Ada' })).statusCode, 200)
  const [renamed] = await step('profile changed', ['user.updated -'])
  t.equal(renamed!.event!.data.user.name, 'Ada')

  const second = await signIn(app, account)
  const s2 = sid(second.accessToken)
  await step('sign-in', [`session.created ${s2}`])
  t.equal((await refresh(app, second.refreshToken)).statusCode, 200)
  await step('a refresh is no new session', [])
  t.equal((await logout(app, {}, bearer(second.accessToken))).statusCode, 204)
  await step('sign-out', [`session.revoked ${s2}`])

  const third = await signIn(app, account)
  const s3 = sid(third.accessToken)
  t.equal((await revokeSession(app, tokens.accessToken, s3)).statusCode, 204)
  await step('a session signed out from another', [`session.created ${s3}`, `session.revoked ${s3}`])

  const fourth = await signIn(app, account)
  const s4 = sid(fourth.accessToken)
  const newEmail = `moved.${account.email}`
  t.equal((await call(app, 'POST', '/me/email', tokens.accessToken, { newEmail, currentPassword: account.password })).statusCode, 202)
  await step('a change of email asked for: nothing changed yet', [`session.created ${s4}`])
  const link = tokenFrom(await smtp.next(newEmail, 'Confirm your new email address'), APP_URL, '/confirm-email')
  t.equal((await post(app, '/email/change/confirm', { token: link }, bearer(tokens.accessToken))).statusCode, 204)
  const moved = await step('email changed: the other sessions end', ['user.updated -', `session.revoked ${s4}`])
  t.equal(moved.find(d => d.event!.type === 'user.updated')!.event!.data.user.email, newEmail)

  t.equal((await call(app, 'POST', `/admin/users/${userId}/suspend`, boss.accessToken, { reason: 'spam' })).statusCode, 204)
  const suspended = await step('suspended: every session ends', ['user.suspended -', `session.revoked ${s1}`])
  t.equal(suspended.find(d => d.event!.type === 'user.suspended')!.event!.data.user.id, userId)
  t.equal((await call(app, 'DELETE', `/admin/users/${userId}/suspend`, boss.accessToken)).statusCode, 204)
  await step('unsuspended', ['user.updated -'])

  const last = await signIn(app, { email: newEmail, password: account.password })
  t.equal((await call(app, 'DELETE', '/me', last.accessToken, { currentPassword: account.password })).statusCode, 204)
  const [deleted] = (await step('deleted', [`session.created ${sid(last.accessToken)}`, 'user.deleted -'])).filter(d => d.event!.type === 'user.deleted')
  t.equal(deleted!.event!.data.user.email, newEmail, 'the account as it was')

  await app.mailer.flush()
  t.equal(hooks.accepted().length, seen, 'nothing more arrives')
  t.same(hooks.deliveries.filter(d => !d.event), [], 'every delivery verified')
  const ids = hooks.deliveries.map(d => d.id)
  t.equal(new Set(ids).size, ids.length, 'each webhook-id once')
  const queued = await queuedFor(userId)
  t.same(queued.map(r => r.id).sort(), hooks.accepted().filter(about(userId)).map(d => d.id).sort(), 'webhook-id: the id of the outbox row')
  t.same([...new Set(queued.map(r => r.status))], ['sent'])
  t.same(queued.map(r => r.attempts), queued.map(() => 1), 'each delivered at the first attempt')
  t.notOk(hooks.deliveries.some(d => /password|hash|token/i.test(d.body)), 'no secret in any body')
  t.match(app.logs.join(''), /"kind":"webhook".*"msg":"webhook delivered"/)
})

t.test('WEBHOOK_EVENTS narrows what is queued and sent', async t => {
  const secret = newWebhookSecret()
  const hooks = await webhookReceiver(t, secret)
  const app = await hooksApp(t, hooks, secret, { WEBHOOK_EVENTS: 'user.created, session.revoked' })
  const { body: account, tokens } = await register(app)
  const other = await signIn(app, account)
  await logout(app, {}, bearer(other.accessToken))
  await call(app, 'PATCH', '/me', tokens.accessToken, { name: 'Ada' })
  await app.mailer.flush()
  t.same(hooks.accepted().filter(about(tokens.user.id)).map(summary).sort(), [`session.revoked ${sid(other.accessToken)}`, 'user.created -'])
  t.same((await queuedFor(tokens.user.id)).map(r => r.type).sort(), ['session.revoked', 'user.created'], 'the others are not even queued')
})

t.test('a receiver with another secret fails every delivery; so do a changed body, id or timestamp', async t => {
  const secret = newWebhookSecret()
  const wrong = await webhookReceiver(t, newWebhookSecret())
  const app = await hooksApp(t, wrong, secret)
  const { tokens } = await register(app)
  await app.mailer.flush()
  const mine = wrong.deliveries.filter(d => d.body.includes(tokens.user.id))
  t.equal(mine.length, 2, 'user.created and session.created were tried')
  for (const d of mine) {
    t.equal(d.status, 400)
    t.match(d.error, /No matching signature found/)
  }
  t.same((await queuedFor(tokens.user.id)).map(r => [r.status, r.last_error]), [['pending', 'the webhook receiver answered 400'], ['pending', 'the webhook receiver answered 400']], 'refused: retried later')

  // with the right secret, the same request verifies; any part changed does not
  const right = new Webhook(secret)
  const { headers, body } = mine[0]!
  t.same(right.verify(body, headers), JSON.parse(body))
  t.throws(() => right.verify(body.replace(tokens.user.id, tokens.user.id.replace(/^./, c => c === 'a' ? 'b' : 'a')), headers), /No matching signature found/)
  t.throws(() => right.verify(body, { ...headers, 'webhook-id': mine[1]!.id }), /No matching signature found/)
  t.throws(() => right.verify(body, { ...headers, 'webhook-timestamp': String(Number(headers['webhook-timestamp']) + 1) }), /No matching signature found/)
  t.throws(() => right.verify(body, { ...headers, 'webhook-timestamp': String(Number(headers['webhook-timestamp']) - 600) }), /too old/)
  // leave nothing for the next test's sender
  await rows(sql`update outbox set status = 'failed' where kind = 'webhook' and status = 'pending'`)
})

t.test('the receiver down (refused, then 500), then back: each event delivered once, with the same webhook-id; nothing lost', async t => {
  const secret = newWebhookSecret()
  const hooks = await webhookReceiver(t, secret)
  const clock = fakeClock()
  const app = await hooksApp(t, hooks, secret, {}, clock)
  await hooks.stop()

  const users = [await register(app), await register(app), await register(app)].map(r => r.tokens.user.id)
  await app.mailer.flush()
  const queued = async () => (await Promise.all(users.map(queuedFor))).flat()
  const refused = await queued()
  t.equal(refused.length, 6, 'user.created and session.created of each')
  for (const row of refused) {
    t.match(row, { status: 'pending', attempts: 1 })
    t.match(row.last_error, /ECONNREFUSED/, 'the cause of the failed fetch is kept')
  }
  t.match(app.logs.join(''), /"kind":"webhook".*"msg":"outbox row not delivered; will retry"/)

  await hooks.start()
  hooks.answer(500)
  await app.mailer.flush()
  t.equal(hooks.deliveries.length, 0, 'not before its retry time')
  clock.advance(30_000)
  await app.mailer.flush()
  t.equal(hooks.deliveries.length, 6, 'the second attempt reached the receiver')
  t.same(hooks.accepted(), [])
  t.same((await queued()).map(r => [r.status, r.attempts, r.last_error]), refused.map(() => ['pending', 2, 'the webhook receiver answered 500']))

  hooks.answer(204)
  clock.advance(30_000)
  await app.mailer.flush()
  const accepted = hooks.accepted()
  t.same(accepted.map(d => d.id).sort(), refused.map(r => r.id).sort(), 'every event delivered, none lost')
  t.same(hooks.deliveries.slice(0, 6).map(d => d.id).sort(), accepted.map(d => d.id).sort(), 'the same webhook-id on every attempt')
  for (const d of accepted) t.equal(d.body, hooks.deliveries.find(x => x.id === d.id)!.body, 'and the same body')

  clock.advance(120_000)
  await app.mailer.flush()
  await app.mailer.flush()
  t.equal(hooks.accepted().length, 6, 'delivered once')
  t.same((await queued()).map(r => [r.status, r.attempts]), refused.map(() => ['sent', 3]))
})

t.test('queued in the transaction of the change: a change that fails queues nothing', async t => {
  const secret = newWebhookSecret()
  const hooks = await webhookReceiver(t, secret)
  const app = await hooksApp(t, hooks, secret)

  // sign-up: user.created is queued before the session opens; the session fails, so the account never existed
  const opened = stub(t, app.sessions, 'open', async () => { throw new Error('session store unavailable') })
  const account = newAccount()
  t.equal((await post(app, '/register', account)).statusCode, 500)
  opened.restore()
  t.same(await rows(sql`select id from users where email = ${account.email}`), [])
  t.same(await rows(sql`select id from outbox where kind = 'webhook' and data->'data'->'user'->>'email' = ${account.email}`), [], 'no user.created')
  t.match(app.logs.join(''), /session store unavailable/)

  // deletion: user.deleted is queued first, then the history row fails: the account stays, nothing is sent
  const { tokens } = await register(app, account)
  const record = app.events.record.bind(app.events)
  stub(t, app.events, 'record', async (ex, type, ...rest) => {
    if (type === 'account_deleted') throw new Error('history unavailable')
    return record(ex, type, ...rest)
  })
  t.equal((await call(app, 'DELETE', '/me', tokens.accessToken, { currentPassword: account.password })).statusCode, 500)
  t.match(app.logs.join(''), /history unavailable/)
  t.equal((await rows(sql`select id from users where id = ${tokens.user.id}`)).length, 1, 'the account is still there')
  await app.mailer.flush()
  t.same((await queuedFor(tokens.user.id)).map(r => r.type).sort(), ['session.created', 'user.created'], 'no user.deleted queued')
  t.notOk(hooks.accepted().some(d => d.event!.type === 'user.deleted'), 'nor sent')
})

t.test('without WEBHOOK_URL nothing is queued; rows left from when it was set are skipped, not sent', async t => {
  const app = await build(t)
  const { body: account, tokens } = await register(app)
  const other = await signIn(app, account)
  await logout(app, {}, bearer(other.accessToken))
  await call(app, 'PATCH', '/me', tokens.accessToken, { name: 'Ada' })
  t.same(await queuedFor(tokens.user.id), [])
  t.equal((await rows(sql`select id from outbox where kind = 'webhook' and status = 'pending'`)).length, 0)

  // queued while set (the receiver down), then the instance restarts without it
  const secret = newWebhookSecret()
  const hooks = await webhookReceiver(t, secret)
  await hooks.stop()
  const before = await hooksApp(t, hooks, secret)
  const left = (await register(before)).tokens.user.id
  await before.mailer.flush()
  await before.close()
  await hooks.start()
  // past the back-off
  const later = await build(t, { clock: fakeClock(Date.now() + 60_000) })
  await later.mailer.flush()
  t.same((await queuedFor(left)).map(r => r.status), ['skipped', 'skipped'])
  t.match(later.logs.join(''), /outbox row skipped: WEBHOOK_URL is no longer set/)
  t.same(hooks.deliveries, [])
})
