/// <reference lib="dom" />
import type { Response } from 'playwright-core'
import t from 'tap'
import { claims, type Test } from '../helper.js'
import { freePort } from '../live-server.js'
import { startTestProvider } from '../oidc-provider.js'
import { totpAt } from '../totp.js'
import { demoBrowser, needsChromium } from './demo-browser.js'

// The demo page's "Sign in with…" in Chromium, through a real OpenID provider running in this process
// whose sign-in page is filled in as a person would.

const BUTTON = 'Sign in with Test Provider'

/**
 * One provider and one API for the file (a server takes seconds to start), each test in a browser context
 * of its own: no cookies, no storage, no session at the provider. Each test signs in its own accounts.
 */
async function startDemo (t: Test) {
  // the provider registers the API's callback, so the API's port is chosen first
  const port = await freePort()
  const op = await startTestProvider({ redirectUris: [`http://localhost:${port}/oauth/test/callback`] })
  t.teardown(() => op.stop())
  for (const sub of ['alice', 'bob', 'carol']) {
    op.accounts.set(sub, { sub, email: `${sub}@example.com`, email_verified: true, name: sub[0]!.toUpperCase() + sub.slice(1) })
  }
  const { server, context } = await demoBrowser(t, {
    PORT: String(port),
    OIDC_PROVIDERS: 'test',
    OIDC_TEST_ISSUER: op.issuer,
    OIDC_TEST_CLIENT_ID: op.clientId,
    OIDC_TEST_CLIENT_SECRET: op.clientSecret,
    OIDC_TEST_NAME: 'Test Provider',
  })
  // opened at PUBLIC_URL's origin (localhost, the development default), so /demo is an allowed redirect URI
  return { op, browser: context.browser()!, demoUrl: `http://localhost:${server.port}/demo` }
}

const shared = needsChromium ? undefined : await startDemo(t)

async function providerDemo (t: Test) {
  const { op, browser, demoUrl } = shared!
  const context = await browser.newContext()
  t.teardown(() => context.close())
  const page = await context.newPage()
  const errors: string[] = []
  page.on('pageerror', e => errors.push(e.message))
  page.on('console', m => { if (m.text().includes('Content Security Policy')) errors.push(m.text()) })
  await page.goto(demoUrl)
  await page.waitForSelector('body[data-ready="true"]')

  const out = () => page.textContent('#out').then(text => JSON.parse(text!) as Record<string, unknown>)
  const refreshCookie = async () => (await context.cookies()).filter(c => c.name === 'refresh')
  const storage = () => page.evaluate(() => sessionStorage.length)
  /** Clicks the provider's button; with `account`, fills in the provider's sign-in page. The page's /oauth/token answer, if it sent one. */
  const signIn = async (account?: string) => {
    const answers: Response[] = []
    const listen = (r: Response) => { if (new URL(r.url()).pathname === '/oauth/token') answers.push(r) }
    page.on('response', listen)
    // the page that comes back marks itself ready once it has finished the sign-in
    await page.evaluate(() => { delete document.body.dataset.ready })
    await page.getByRole('button', { name: BUTTON }).click()
    if (account !== undefined) {
      await page.waitForURL(url => url.origin === op.issuer)
      await page.waitForSelector('h1:text("Test provider")')
      await page.fill('input[name=account]', account)
      await page.getByRole('button', { name: 'Continue' }).click()
    }
    await page.waitForSelector('body[data-ready="true"]')
    page.off('response', listen)
    return answers[0]
  }
  const signOut = async () => {
    await page.click('#logout')
    await page.waitForSelector('#status:text("signed out")')
  }
  return { op, page, errors, demoUrl, out, refreshCookie, storage, signIn, signOut }
}

const factors = ({ aal, amr }: Record<string, unknown>) => ({ aal, amr })

t.test('the /demo page signs in through the provider\'s own sign-in page, in cookie mode, and the code leaves the address bar', { skip: needsChromium }, async t => {
  const demo = await providerDemo(t)
  const { page } = demo
  t.equal(await page.isVisible('#login-provider'), true)
  t.same(await page.$$eval('#providers button', buttons => buttons.map(b => b.textContent)), [BUTTON], 'one button per provider')

  const answer = await demo.signIn('alice')
  await page.waitForSelector('#status:text("signed in as alice@example.com")')
  t.equal(page.url(), demo.demoUrl, 'no code or state left in the address bar')
  t.equal(answer?.status(), 200)
  const body = await answer!.json() as { accessToken: string, refreshToken?: string }
  t.equal(body.refreshToken, undefined, 'cookie mode: no refresh token in the body')
  t.same(factors(claims(body.accessToken)), { aal: 'aal1', amr: ['fed'] })
  const [cookie, ...more] = await demo.refreshCookie()
  t.same(more, [])
  t.equal(cookie?.expires, -1, 'the refresh cookie is set, for this browser session (no remember me)')
  t.equal(await demo.storage(), 0, 'the verifier and state leave sessionStorage')

  await page.click('#me')
  await page.waitForFunction(() => document.getElementById('out')!.textContent!.includes('"emailVerified"'))
  t.match(await demo.out(), { email: 'alice@example.com', name: 'Alice', emailVerified: true })

  // a reload keeps the session through the cookie
  await page.reload()
  await page.waitForSelector('body[data-ready="true"]')
  t.equal(await page.textContent('#status'), 'signed in as alice@example.com')
  t.same(demo.errors, [], 'no script errors, nothing refused by the page\'s policy')
})

t.test('the /demo page: an account with an authenticator app goes on from the provider to the code form', { skip: needsChromium }, async t => {
  const demo = await providerDemo(t)
  const { page } = demo
  await demo.signIn('bob')
  await page.waitForSelector('#status:text("signed in as bob@example.com")')

  // turn on two-factor sign-in, as a person does on this page
  await page.click('#mfa-enroll button')
  await page.waitForSelector('#mfa-confirm', { state: 'visible' })
  const secret = (await page.textContent('#secret'))!
  const confirmedAt = Date.now()
  await page.fill('#mfa-confirm input[name=code]', totpAt(secret, confirmedAt))
  await page.click('#mfa-confirm button')
  await page.waitForSelector('#recovery', { state: 'visible' })
  await demo.signOut()

  // the provider still knows its user, so it asks nothing this time; the page asks for a code
  const asked = await demo.signIn()
  t.equal(asked?.status(), 403)
  await page.waitForSelector('#login-mfa', { state: 'visible' })
  t.equal(page.url(), demo.demoUrl, 'no code or state left in the address bar')
  t.match(await page.textContent('#login-mfa-why'), /identity provider signed you in/)
  t.match(await demo.out(), { code: 'mfa_required', methods: ['totp', 'recovery_code'] })
  t.equal(await page.textContent('#status'), 'signed out')
  t.same(await demo.refreshCookie(), [], 'no cookie before the second factor')

  // the step of the confirmation is spent: the app's next code
  const finished = page.waitForResponse(r => new URL(r.url()).pathname === '/login/mfa' && r.status() === 200)
  await page.fill('#login-mfa input[name=code]', totpAt(secret, confirmedAt + 30_000))
  await page.click('#login-mfa button')
  const completed = await (await finished).json() as { accessToken: string }
  await page.waitForSelector('#status:text("signed in as bob@example.com")')
  t.same(factors(claims(completed.accessToken)), { aal: 'aal2', amr: ['fed', 'otp'] })
  t.equal(await page.isHidden('#login-mfa'), true)
  t.equal((await demo.refreshCookie()).length, 1, 'the refresh cookie is set')
  t.same(demo.errors, [], 'no script errors, nothing refused by the page\'s policy')
})

t.test('the /demo page shows the problem code when the provider refuses, and never exchanges a code it did not ask for', { skip: needsChromium }, async t => {
  const demo = await providerDemo(t)
  const { page } = demo
  const exchanges: string[] = []
  page.on('request', r => { if (new URL(r.url()).pathname === '/oauth/token') exchanges.push(r.url()) })

  // the person cancels at the provider
  demo.op.deny = true
  await demo.signIn()
  await page.waitForSelector('#status:text("signed out (provider_denied)")')
  t.match(await demo.out(), { error: 'provider_denied' })
  t.equal(page.url(), demo.demoUrl, 'the error and state leave the address bar')
  t.equal(await demo.storage(), 0)
  t.same(await demo.refreshCookie(), [])

  // a code and state this tab never started a sign-in for (a link from elsewhere)
  await page.goto(`${demo.demoUrl}?code=a-code-from-elsewhere&state=a-state-from-elsewhere`)
  await page.waitForSelector('body[data-ready="true"]')
  await page.waitForSelector('#status:text("signed out (state_mismatch)")')
  t.match(await demo.out(), { error: 'state_mismatch' })
  t.equal(page.url(), demo.demoUrl)
  t.same(exchanges, [], 'no code was sent to /oauth/token')

  // and the next try signs in, remember me kept through the provider's pages
  await page.check('#login-provider input[name=rememberMe]')
  await demo.signIn('carol')
  await page.waitForSelector('#status:text("signed in as carol@example.com")')
  const [cookie] = await demo.refreshCookie()
  t.ok(cookie && cookie.expires > Date.now() / 1000 + 86_400, 'a lasting refresh cookie')
  t.same(demo.errors, [], 'no script errors, nothing refused by the page\'s policy')
})
