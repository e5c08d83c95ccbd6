import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import t from 'tap'
import { totpAt } from '../totp.js'
import { freePort, liveServer } from '../live-server.js'
import { startTestProvider } from '../oidc-provider.js'
import { runReadmeBlock } from '../readme.js'
import type { Test } from '../helper.js'

const require = createRequire(import.meta.url)
const newman = require('newman') as { run: (options: Record<string, unknown>, cb: (err: Error | null, summary: NewmanSummary) => void) => void }
interface NewmanSummary {
  run: {
    stats: { assertions: { total: number, failed: number } }
    failures: { error: { message: string }, source?: { name?: string } }[]
    executions: { item: { name: string }, response?: { code: number, headers: { get: (name: string) => string | undefined }, stream?: Buffer } }[]
  }
}

const COLLECTION = new URL('../../openapi/auth-api.postman_collection.json', import.meta.url).pathname
const collectionVariable = (key: string) =>
  (JSON.parse(readFileSync(COLLECTION, 'utf8')) as { variable: { key: string, value: string }[] }).variable.find(v => v.key === key)!.value
const runCollection = (baseUrl: string) => new Promise<NewmanSummary>((resolve, reject) => {
  newman.run({ collection: COLLECTION, envVar: [{ key: 'baseUrl', value: baseUrl }], reporters: [] }, (err, s) => (err ? reject(err) : resolve(s)))
})

// What a person sees running the committed collection in its own order: sign up, look around (the sessions,
// the security history), ask to change the email (202; the example token of the link is refused, 400), sign
// out, forget the password, sign in again, turn on two-factor sign-in (enrol, confirm, new recovery codes), sign
// out and in with a code (403 mfa_required, then /login/mfa), turn it off, try passkeys, start signing in
// with the identity provider (302 there), come back cancelled (302 to the app) and replay the state (400),
// start a link, be refused the admin routes (suspension and everyone's history too), change the password, leave.
const IDENTITY_PROVIDER = [200, 302, 302, 400, 400, 200, 200, 404]
// the requests of that folder that need a provider: authorize, the two callbacks, link
const NEEDS_PROVIDER = [1, 2, 3, 5]
const statuses = (identityProvider: number[]) => [
  201, 200, 200, 200, 204, 200, 200, 202, 400, 202, 400, 200, 204, 202, 400, 200,
  200, 200, 200, 204, 403, 200, 204,
  200, 400, 200, 404, 404, 200, 401,
  ...identityProvider,
  403, 403, 403, 403, 403, 403, 204, 204, 200, 200, 200,
]
const STATUSES = statuses(IDENTITY_PROVIDER)

/**
 * The server with the test provider configured as a deployment configures one: its callback
 * (PUBLIC_URL/oauth/test/callback) registered at the provider, the collection's redirectUri an allowed app URI.
 */
async function serverWithProvider (t: Test) {
  const port = await freePort()
  const publicUrl = `http://127.0.0.1:${port}`
  const provider = await startTestProvider({ redirectUris: [`${publicUrl}/oauth/test/callback`] })
  t.teardown(() => provider.stop())
  const server = await liveServer(t, {
    PORT: String(port),
    PUBLIC_URL: publicUrl,
    OIDC_PROVIDERS: 'test',
    OIDC_TEST_ISSUER: provider.issuer,
    OIDC_TEST_CLIENT_ID: provider.clientId,
    OIDC_TEST_CLIENT_SECRET: provider.clientSecret,
    OIDC_TEST_NAME: 'Test provider',
    OAUTH_REDIRECT_URIS: collectionVariable('redirectUri'),
  })
  return { server, provider }
}

t.test('Postman: the committed collection runs green in newman as committed, twice against one server', async t => {
  const { server, provider } = await serverWithProvider(t)
  const { authorization_endpoint: authorizationEndpoint } = await (await fetch(`${provider.issuer}/.well-known/openid-configuration`)).json() as { authorization_endpoint: string }
  for (const run of ['first run', 'second run']) {
    const summary = await runCollection(server.url)
    t.same(summary.run.failures.map(f => `${f.source?.name}: ${f.error.message}`), [], `${run}: no failures`)
    t.same(summary.run.executions.map(e => e.response?.code), STATUSES, `${run}: every request answers as documented`)
    t.ok(summary.run.stats.assertions.total >= STATUSES.length, `${run}: ${summary.run.stats.assertions.total} assertions`)
    t.equal(summary.run.stats.assertions.failed, 0)
    // what the collection can only say is "not this API": the redirect and the link go to this provider's authorization endpoint
    const response = (name: string) => summary.run.executions.find(e => e.item.name === name)?.response
    const location = response('Start signing in with an identity provider')?.headers.get('Location') ?? ''
    t.equal(location.split('?')[0], authorizationEndpoint, `${run}: authorize redirects to the provider's authorization endpoint`)
    const link = JSON.parse(String(response('Start linking an identity provider to this account')?.stream ?? '{}')) as { authorizeUrl?: string }
    t.equal(link.authorizeUrl?.split('?')[0], authorizationEndpoint, `${run}: the link's authorizeUrl is at the provider too`)
  }
})

t.test('Postman: against a server without an identity provider the requests that need one are skipped, the rest runs green', async t => {
  const server = await liveServer(t)
  const summary = await runCollection(server.url)
  t.same(summary.run.failures.map(f => `${f.source?.name}: ${f.error.message}`), [], 'no failures')
  const folder = (JSON.parse(readFileSync(COLLECTION, 'utf8')) as { item: { name: string, item: { name: string }[] }[] }).item
    .find(f => f.name === 'Sign in with an identity provider')!.item.map(i => i.name)
  const sent = new Set(summary.run.executions.map(e => e.item.name))
  t.same(folder.filter(name => !sent.has(name)), NEEDS_PROVIDER.map(i => folder[i]), 'authorize, the two callbacks and the link are skipped')
  t.same(summary.run.executions.map(e => e.response?.code), statuses(IDENTITY_PROVIDER.filter((_, i) => !NEEDS_PROVIDER.includes(i))), 'every other request answers as documented')
  t.equal(summary.run.stats.assertions.failed, 0)
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
