import { randomBytes } from 'node:crypto'
import t from 'tap'
import { assertProblem, build, login, newAccount, register } from './helper.js'
import { tcpProxy } from './tcp-proxy.js'

// Redis on the machine (127.0.0.1:6379); every test uses a key prefix of its own.
const REDIS = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'
const prefix = () => `test:${randomBytes(4).toString('hex')}:`

t.test('two instances on one Redis share the per-IP and per-account counts', async t => {
  const env = { REDIS_URL: REDIS, REDIS_KEY_PREFIX: prefix(), RATE_LIMIT_LOGIN_ACCOUNT: '3', RATE_LIMIT_LOGIN_IP: '5' }
  const a = await build(t, { env })
  const b = await build(t, { env })
  const { body: account } = await register(a)
  const wrong = { email: account.email, password: 'wrong password' }
  assertProblem(t, await login(a, wrong), 401, 'invalid_credentials')
  assertProblem(t, await login(b, wrong), 401, 'invalid_credentials')
  assertProblem(t, await login(a, wrong), 401, 'invalid_credentials')
  const locked = await login(b, { email: account.email, password: account.password })
  assertProblem(t, locked, 429, 'too_many_requests')
  t.ok(Number(locked.headers['retry-after']) > 850, 'the window counts from the first failure')
  t.equal(locked.headers['ratelimit-limit'], '3')
  // five requests from this address in all, on either instance: the sixth is refused
  assertProblem(t, await login(a, { email: 'someone@example.com', password: 'wrong password' }), 401, 'invalid_credentials')
  const ip = await login(b, { email: 'someone@example.com', password: 'wrong password' })
  assertProblem(t, ip, 429, 'too_many_requests')
  t.equal(ip.headers['ratelimit-limit'], '5')
})

t.test('a success before the lock clears the Redis count', async t => {
  const app = await build(t, { env: { REDIS_URL: REDIS, REDIS_KEY_PREFIX: prefix(), RATE_LIMIT_LOGIN_ACCOUNT: '2' } })
  const { body: account } = await register(app)
  assertProblem(t, await login(app, { email: account.email, password: 'wrong password' }), 401, 'invalid_credentials')
  t.equal((await login(app, { email: account.email, password: account.password })).statusCode, 200)
  assertProblem(t, await login(app, { email: account.email, password: 'wrong password' }), 401, 'invalid_credentials')
  t.equal((await login(app, { email: account.email, password: account.password })).statusCode, 200)
})

t.test('Redis away: sign-in fails closed with 503, everything else works, and it recovers by itself', async t => {
  const proxy = await tcpProxy(6379)
  t.teardown(() => proxy.close())
  const app = await build(t, { env: { REDIS_URL: `redis://127.0.0.1:${proxy.port}`, REDIS_KEY_PREFIX: prefix() } })
  const account = newAccount()
  await register(app, account)
  t.equal((await login(app, { email: account.email, password: account.password })).statusCode, 200)

  await proxy.cut()
  const started = Date.now()
  const down = await login(app, { email: account.email, password: account.password })
  assertProblem(t, down, 503, 'service_unavailable')
  t.ok(Date.now() - started < 3000, 'answered at once, no hang')
  t.ok(down.headers['retry-after'])
  t.equal((await app.inject({ url: '/health' })).statusCode, 200, 'other routes keep working')
  t.equal((await app.inject({ method: 'POST', url: '/register', payload: newAccount() })).statusCode, 201)

  await proxy.restore()
  let status = 0
  for (let i = 0; i < 50 && status !== 200; i++) {
    await new Promise(resolve => setTimeout(resolve, 200))
    status = (await login(app, { email: account.email, password: account.password })).statusCode
  }
  t.equal(status, 200, 'sign-in works again without a restart')
})
