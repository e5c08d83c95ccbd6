/// <reference lib="dom" />
import t from 'tap'
import { totpAt } from '../totp.js'
import { claims, newAccount, type Test } from '../helper.js'
import { demoBrowser, needsChromium } from './demo-browser.js'

// The demo page's passkeys in Chromium: a file of its own, as browser.test.ts is near one file's time limit.

/**
 * The demo page with a CDP virtual authenticator: a platform authenticator (a laptop's screen lock, say)
 * that keeps discoverable credentials and verifies its user. WebAuthn refuses an IP address as RP ID, so the
 * page is opened at localhost (the development RP ID; its origin is allowed by default).
 */
async function passkeyDemo (t: Test) {
  const { server, context, page, errors } = await demoBrowser(t, {})
  page.on('console', m => { if (m.text().includes('Content Security Policy')) errors.push(m.text()) })
  const cdp = await context.newCDPSession(page)
  await cdp.send('WebAuthn.enable')
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
  })
  await page.goto(`http://localhost:${server.port}/demo`)
  await page.waitForSelector('body[data-ready="true"]')

  const out = () => page.textContent('#out').then(text => JSON.parse(text!) as Record<string, unknown>)
  const refreshCookie = async () => (await context.cookies()).filter(c => c.name === 'refresh')
  const response = (path: string, method = 'POST') => page.waitForResponse(r => new URL(r.url()).pathname === path && r.request().method() === method)
  const listed = () => page.$$eval('#passkeys li[data-id]', items => items.map(i => ({ id: (i as HTMLElement).dataset.id!, text: i.textContent! })))

  const signUp = async (account: { email: string, password: string }) => {
    const list = response('/passkeys', 'GET')
    await page.fill('#register input[name=email]', account.email)
    await page.fill('#register input[name=password]', account.password)
    await page.click('#register button')
    await page.waitForSelector(`#status:text("signed in as ${account.email}")`)
    t.same(await (await list).json(), { passkeys: [] }, 'a new account has no passkeys')
  }
  const signOut = async () => {
    await page.click('#logout')
    await page.waitForSelector('#status:text("signed out")')
  }
  const addPasskey = async (name: string) => {
    const answer = response('/passkeys/register')
    await page.fill('#passkey-add input[name=name]', name)
    await page.click('#passkey-add button')
    const res = await answer
    t.equal(res.status(), 201, 'the passkey is registered')
    const passkey = await res.json() as { id: string, name: string }
    await page.waitForSelector(`#passkeys li[data-id="${passkey.id}"]`)
    return passkey
  }
  /** The answer of POST /login/passkey (status and body) once the browser has signed the challenge. */
  const signInWithPasskey = async () => {
    const answer = response('/login/passkey')
    await page.click('#login-passkey button')
    const res = await answer
    return { status: res.status(), body: await res.json() as Record<string, unknown> }
  }
  const me = async () => {
    await page.evaluate(() => { document.getElementById('out')!.textContent = '' })
    await page.click('#me')
    await page.waitForFunction(() => document.getElementById('out')!.textContent!.includes('"mfa"'))
    return out()
  }
  /** Whether the authenticator verifies its user: off, it still signs, with the UV flag of its answers cleared. */
  const userVerification = (on: boolean) => cdp.send('WebAuthn.setResponseOverrideBits', { authenticatorId, isBadUV: !on })
  const credentials = async () => (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials
  return { page, errors, out, refreshCookie, response, listed, signUp, signOut, addPasskey, signInWithPasskey, me, userVerification, credentials }
}

const factors = ({ aal, amr }: Record<string, unknown>) => ({ aal, amr })

t.test('the /demo page adds a passkey, signs in with it (no password, no email typed), deletes it, and is then refused', { skip: needsChromium }, async t => {
  const demo = await passkeyDemo(t)
  const { page } = demo
  const account = newAccount()
  await demo.signUp(account)

  const passkey = await demo.addPasskey('this laptop')
  t.match(passkey, { id: String, name: 'this laptop', backedUp: false, deviceType: 'singleDevice' })
  t.match(await demo.listed(), [{ id: passkey.id, text: /this laptop/ }])
  const user = await demo.me()
  t.match(user, { email: account.email, mfa: { passkeys: 1 } })

  // one discoverable credential on the authenticator, whose user handle names neither the account nor the email
  const [credential, ...more] = await demo.credentials()
  t.same(more, [])
  t.equal(credential!.isResidentCredential, true)
  t.equal(credential!.rpId, 'localhost')
  const handle = Buffer.from(credential!.userHandle!, 'base64')
  const userId = String(user.id)
  t.notOk(handle.toString('latin1').includes(account.email), 'the user handle is not the email')
  t.notOk(handle.toString('latin1').includes(userId) || handle.toString('hex') === userId.replace(/-/g, ''), 'the user handle is not the user id')

  await demo.signOut()
  t.same(await demo.refreshCookie(), [])

  // the authenticator verified its user: two factors in one (possession and a screen lock)
  const signedIn = await demo.signInWithPasskey()
  t.equal(signedIn.status, 200)
  t.equal(signedIn.body.refreshToken, undefined, 'cookie mode: no refresh token in the body')
  t.same(factors(claims(signedIn.body.accessToken as string)), { aal: 'aal2', amr: ['hwk', 'user'] })
  await page.waitForSelector(`#status:text("signed in as ${account.email}")`)
  t.equal((await demo.refreshCookie()).length, 1, 'the refresh cookie is set')
  await page.waitForSelector(`#passkeys li[data-id="${passkey.id}"]`)
  t.match(await demo.listed(), [{ id: passkey.id, text: /this laptop.*last used/ }])

  // delete it: gone from the list and from /me
  const deleted = demo.response(`/passkeys/${passkey.id}`, 'DELETE')
  await page.click(`#passkeys li[data-id="${passkey.id}"] button`)
  t.equal((await deleted).status(), 204)
  await page.waitForSelector('#passkeys li[data-id]', { state: 'detached' })
  t.match(await demo.me(), { mfa: { passkeys: 0 } })

  // the authenticator still holds the credential, but the server no longer knows it
  await demo.signOut()
  t.equal((await demo.credentials()).length, 1)
  const refused = await demo.signInWithPasskey()
  t.equal(refused.status, 401)
  await page.waitForFunction(() => document.getElementById('out')!.textContent!.includes('invalid_credentials'))
  t.match(await demo.out(), { status: 401, code: 'invalid_credentials' })
  t.equal(await page.textContent('#status'), 'signed out')
  t.same(await demo.refreshCookie(), [], 'no cookie')
  t.same(demo.errors, [], 'no script errors, nothing refused by the page\'s policy')
})

t.test('the /demo page: a passkey without user verification is one factor, and with an authenticator app on it asks for a code', { skip: needsChromium }, async t => {
  const demo = await passkeyDemo(t)
  const { page } = demo
  const account = newAccount()
  await demo.signUp(account)

  // an authenticator that only tests presence (a touch, no PIN or biometrics), when adding and when signing in
  await demo.userVerification(false)
  const passkey = await demo.addPasskey('security key')
  await demo.signOut()
  const oneFactor = await demo.signInWithPasskey()
  t.equal(oneFactor.status, 200)
  t.same(factors(claims(oneFactor.body.accessToken as string)), { aal: 'aal1', amr: ['hwk'] })
  await page.waitForSelector(`#status:text("signed in as ${account.email}")`)

  // turn on two-factor sign-in with an authenticator app
  await page.click('#mfa-enroll button')
  await page.waitForSelector('#mfa-confirm', { state: 'visible' })
  const secret = (await page.textContent('#secret'))!
  const confirmedAt = Date.now()
  await page.fill('#mfa-confirm input[name=code]', totpAt(secret, confirmedAt))
  await page.click('#mfa-confirm button')
  await page.waitForSelector('#recovery', { state: 'visible' })
  await demo.signOut()

  // the passkey alone is now not enough: the page's code prompt, no session, no cookie
  const asked = await demo.signInWithPasskey()
  t.equal(asked.status, 403)
  t.match(asked.body, { code: 'mfa_required', mfaToken: String })
  await page.waitForSelector('#login-mfa', { state: 'visible' })
  t.match(await page.textContent('#login-mfa-why'), /passkey/)
  t.match(await demo.out(), { code: 'mfa_required' })
  t.equal(await page.textContent('#status'), 'signed out')
  t.same(await demo.refreshCookie(), [], 'no cookie before the second factor')

  // the step of the confirmation is spent: the app's next code
  const finished = demo.response('/login/mfa')
  await page.fill('#login-mfa input[name=code]', totpAt(secret, confirmedAt + 30_000))
  await page.click('#login-mfa button')
  const completed = await finished
  t.equal(completed.status(), 200)
  t.same(factors(claims((await completed.json() as { accessToken: string }).accessToken)), { aal: 'aal2', amr: ['hwk', 'otp'] })
  await page.waitForSelector(`#status:text("signed in as ${account.email}")`)
  t.equal(await page.isHidden('#login-mfa'), true)
  t.equal((await demo.refreshCookie()).length, 1, 'the refresh cookie is set')
  await page.waitForSelector(`#passkeys li[data-id="${passkey.id}"]`)

  // the same passkey with user verification is two factors by itself: no code asked
  await demo.signOut()
  await demo.userVerification(true)
  const verified = await demo.signInWithPasskey()
  t.equal(verified.status, 200)
  t.same(factors(claims(verified.body.accessToken as string)), { aal: 'aal2', amr: ['hwk', 'user'] })
  await page.waitForSelector(`#status:text("signed in as ${account.email}")`)
  t.equal(await page.isHidden('#login-mfa'), true)
  t.same(demo.errors, [], 'no script errors, nothing refused by the page\'s policy')
})
