import { randomBytes } from 'node:crypto'
import postgres from 'postgres'
import t from 'tap'
import { generateSigningKey } from '../../src/auth/keys.js'
import { createServerDatabase, newAccount, type TokenBody } from '../helper.js'
import { liveServer } from '../live-server.js'

const ADMIN = process.env.TEST_DATABASE_URL

t.test('SIGKILL during a burst of registrations and refreshes leaves no half-written rows', {
  skip: ADMIN ? false : 'needs TEST_DATABASE_URL (the database must outlive the killed process)',
}, async t => {
  const env = { DATABASE_URL: await createServerDatabase(ADMIN!), JWT_PRIVATE_KEY: generateSigningKey().privatePem, REFRESH_TOKEN_SECRET: randomBytes(32).toString('base64'), MFA_ENCRYPTION_KEY: randomBytes(32).toString('base64'), RATE_LIMIT_REGISTER_IP: '10000', RATE_LIMIT_REFRESH_IP: '10000', RATE_LIMIT_LOGIN_IP: '10000' }
  const server = await liveServer(t, env)
  const post = (path: string, body: object) => fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    .then(async r => ({ status: r.status, body: await r.json() as TokenBody }), () => ({ status: 0, body: null }))

  // a few sessions to refresh during the burst
  const seeds = await Promise.all(Array.from({ length: 4 }, () => post('/register', newAccount())))
  const burst = { over: false }
  const refreshLoop = async (token: string) => {
    while (!burst.over) {
      const res = await post('/refresh', { refreshToken: token })
      if (res.status !== 200) return
      token = res.body!.refreshToken
    }
  }
  const loops = seeds.map(s => refreshLoop(s.body!.refreshToken))
  // sign-ups from 8 clients, each with one always in flight, until the server dies under them: however
  // fast sign-ups are, some are committed when the kill lands and others are not
  const accounts: { account: ReturnType<typeof newAccount>, status: number }[] = []
  const registerLoop = async () => {
    for (;;) {
      const account = newAccount()
      const { status } = await post('/register', account)
      accounts.push({ account, status })
      if (status === 0) return
    }
  }
  const registering = Array.from({ length: 8 }, () => registerLoop())
  const committed = () => (server.output().match(/"audit":"register"/g) ?? []).length
  for (let i = 0; i < 1000 && committed() < seeds.length + 8; i++) await new Promise(resolve => setTimeout(resolve, 5))
  server.child.kill('SIGKILL')
  await Promise.all(registering)
  burst.over = true
  await Promise.all(loops)
  t.equal(await server.exited, null, 'killed')

  const db = postgres(env.DATABASE_URL, { max: 1, onnotice: () => {} })
  t.teardown(() => db.end())
  const [check] = await db`
    select
      (select count(*)::int from users where password_hash is null or password_hash not like '$argon2id$%') as users_without_hash,
      (select count(*)::int from users u where not exists (select 1 from sessions s where s.user_id = u.id)) as users_without_session,
      (select count(*)::int from sessions where refresh_counter < 0 or refresh_expires_at > absolute_expires_at) as sessions_out_of_bounds`
  t.same(check, { users_without_hash: 0, users_without_session: 0, sessions_out_of_bounds: 0 }, 'every account committed with its session, or neither')

  // every 201 the clients saw is a real account after a restart
  const restarted = await liveServer(t, env)
  const confirmed = accounts.filter(a => a.status === 201).map(a => a.account)
  for (const a of confirmed) {
    const res = await fetch(`${restarted.url}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: a.email, password: a.password }) })
    t.equal(res.status, 200, `an acknowledged registration survived (${res.status})`)
  }
  const [{ n }] = await db<[{ n: number }]>`select count(*)::int as n from users`
  const cut = accounts.filter(a => a.status === 0).length
  t.ok(confirmed.length >= 1 && cut >= 1, `killed mid-burst: ${confirmed.length} acknowledged, ${cut} cut off`)
  t.ok(n >= confirmed.length + seeds.length, `${n} users stored`)
})
