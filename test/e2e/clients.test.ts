import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import t from 'tap'
import { totpAt } from '../totp.js'
import { liveServer } from '../live-server.js'
import { runReadmeBlock } from '../readme.js'

const require = createRequire(import.meta.url)
const newman = require('newman') as { run: (options: Record<string, unknown>, cb: (err: Error | null, summary: NewmanSummary) => void) => void }
interface NewmanSummary {
  run: {
    stats: { assertions: { total: number, failed: number } }
    failures: { error: { message: string }, source?: { name?: string } }[]
    executions: { item: { name: string }, response?: { code: number } }[]
  }
}

const COLLECTION = new URL('../../openapi/auth-api.postman_collection.json', import.meta.url).pathname
const runCollection = (baseUrl: string) => new Promise<NewmanSummary>((resolve, reject) => {
  newman.run({ collection: COLLECTION, envVar: [{ key: 'baseUrl', value: baseUrl }], reporters: [] }, (err, s) => (err ? reject(err) : resolve(s)))
})

// What a person sees running the committed collection in its own order: sign up, look around, sign out,
// forget the password, sign in again, turn on two-factor sign-in (enrol, confirm, new recovery codes), sign
// out and in with a code (403 mfa_required, then /login/mfa), turn it off, be refused the admin routes,
// change the password, leave.
const STATUSES = [
  201, 200, 200, 200, 204, 200, 202, 400, 200, 204, 202, 400, 200,
  200, 200, 200, 204, 403, 200, 204,
  200, 400, 200, 404, 404, 200, 401,
  403, 403, 403, 204, 204, 200, 200, 200,
]

t.test('Postman: the committed collection runs green in newman as committed, twice against one server', async t => {
  const server = await liveServer(t)
  for (const run of ['first run', 'second run']) {
    const summary = await runCollection(server.url)
    t.same(summary.run.failures.map(f => `${f.source?.name}: ${f.error.message}`), [], `${run}: no failures`)
    t.same(summary.run.executions.map(e => e.response?.code), STATUSES, `${run}: every request answers as documented`)
    t.ok(summary.run.stats.assertions.total >= STATUSES.length, `${run}: ${summary.run.stats.assertions.total} assertions`)
    t.equal(summary.run.stats.assertions.failed, 0)
  }
})

const hasHttpie = (() => {
  try {
    execFileSync('http', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()

// CI installs HTTPie (Debian's httpie); a developer without it sees this test skipped, not passed.
t.test('HTTPie: the README block runs as written', { skip: !hasHttpie && !process.env.CI ? 'HTTPie (`http`) is not installed' : false }, async t => {
  const server = await liveServer(t)
  const run = await runReadmeBlock('httpie', server.port, true)
  t.equal(run.code, 0, run.output)
  t.match(run.output, /"email": "grace@example.com"/)
  t.match(run.output, /"refreshExpiresIn": 2592000/)
  t.match(run.output, /HTTP\/1.1 204 No Content/)
  t.match(run.output, /"code": "validation_failed"/)
  t.match(run.output, /"path": "\/email"/)
})

t.test('HTTPie: the README\'s two-factor sign-in runs as written', { skip: !hasHttpie && !process.env.CI ? 'HTTPie (`http`) is not installed' : false }, async t => {
  const server = await liveServer(t)
  const post = async (path: string, body: unknown, token?: string) => {
    const res = await fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    return await res.json() as Record<string, unknown>
  }
  // the account the README's curl block made, with the app on
  const { accessToken } = await post('/register', { email: 'alan@example.com', password: 'a long passphrase for alan' }) as { accessToken: string }
  const { secret } = await post('/mfa/totp/enroll', undefined, accessToken) as { secret: string }
  const confirmedAt = Date.now()
  t.ok((await post('/mfa/totp/confirm', { code: totpAt(secret, confirmedAt) }, accessToken)).recoveryCodes, 'two-factor sign-in is on')

  const run = await runReadmeBlock('mfa-httpie', server.port, true, () => totpAt(secret, confirmedAt + 30_000))
  t.equal(run.code, 0, run.output)
  t.match(run.output, /"expiresIn": 900,\s+"refreshExpiresIn": 43200/)
})
