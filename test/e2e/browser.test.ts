/// <reference lib="dom" />
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { simpleParser } from 'mailparser'
import { chromium } from 'playwright-core'
import t from 'tap'
import { totpAt } from '../totp.js'
import { claims, newAccount } from '../helper.js'
import { liveServer } from '../live-server.js'
import { CHROMIUM, demoBrowser, needsChromium } from './demo-browser.js'

t.test('the /demo page signs up, stays signed in by silent refresh, and never exposes a token to scripts', { skip: needsChromium }, async t => {
  const { server, context, page, errors } = await demoBrowser(t, { ACCESS_TOKEN_TTL: '30' })

  await page.goto(`${server.url}/demo`)
  await page.waitForSelector('body[data-ready="true"]')
  t.equal(await page.textContent('#status'), 'signed out')
  t.equal(await page.isHidden('#login-provider'), true, 'no identity provider configured: no "Sign in with…" button')

  const account = newAccount()
  await page.fill('#register input[name=email]', account.email)
  await page.fill('#register input[name=password]', account.password)
  await page.fill('#register input[name=name]', 'Browser User')
  await page.click('#register button')
  await page.waitForSelector(`#status:text("signed in as ${account.email}")`)

  await page.evaluate(() => { document.getElementById('out')!.textContent = '' })
  await page.click('#me')
  await page.waitForFunction(email => document.getElementById('out')!.textContent!.includes(email), account.email)
  t.match(await page.textContent('#out'), /"name": "Browser User"/)

  // tokens are out of reach of any script on the page
  const exposed = await page.evaluate(() => ({ cookie: document.cookie, local: localStorage.length, session: sessionStorage.length }))
  t.same(exposed, { cookie: '', local: 0, session: 0 })
  const [cookie] = (await context.cookies()).filter(c => c.name === 'refresh')
  t.ok(cookie, 'the refresh cookie is set')
  t.equal(cookie!.httpOnly, true)
  t.equal(cookie!.sameSite, 'Strict')
  t.equal(cookie!.path, '/')

  // the access token (30 s) is renewed silently 25 s before it expires
  const refreshed = await page.waitForResponse(r => r.url().endsWith('/refresh') && r.request().method() === 'POST', { timeout: 20_000 })
  t.equal(refreshed.status(), 200)
  t.equal((await refreshed.json()).refreshToken, undefined, 'no refresh token in the body')
  await page.waitForSelector('body[data-refreshes="1"]')
  await page.click('#me')
  await page.waitForFunction(() => document.getElementById('out')!.textContent!.includes('"id"'))

  // a reload keeps the session through the cookie
  await page.reload()
  await page.waitForSelector('body[data-ready="true"]')
  t.equal(await page.textContent('#status'), `signed in as ${account.email}`)

  await page.click('#logout')
  await page.waitForSelector('#status:text("signed out")')
  t.same((await context.cookies()).filter(c => c.name === 'refresh'), [], 'the cookie is cleared')
  await page.reload()
  await page.waitForSelector('body[data-ready="true"]')
  t.equal(await page.textContent('#status'), 'signed out', 'and stays signed out')
  t.same(errors, [], 'no script errors')
})

t.test('the /demo page turns on two-factor sign-in with a QR code, then signs in with a code and with a recovery code', { skip: needsChromium }, async t => {
  const { server, context, page, errors } = await demoBrowser(t, {})
  // a Content-Security-Policy refusal (of the QR image, say) is a console message, not a page error
  page.on('console', m => { if (m.text().includes('Content Security Policy')) errors.push(m.text()) })
  const out = () => page.textContent('#out').then(text => JSON.parse(text!) as Record<string, unknown>)
  const refreshCookie = async () => (await context.cookies()).filter(c => c.name === 'refresh')
  const pick = ({ aal, amr }: Record<string, unknown>) => ({ aal, amr })

  await page.goto(`${server.url}/demo`)
  await page.waitForSelector('body[data-ready="true"]')
  const account = newAccount()
  await page.fill('#register input[name=email]', account.email)
  await page.fill('#register input[name=password]', account.password)
  await page.click('#register button')
  await page.waitForSelector(`#status:text("signed in as ${account.email}")`)

  // enrol: the QR code is shown as an image the page's policy allows, with the secret beside it
  await page.click('#mfa-enroll button')
  await page.waitForSelector('#mfa-confirm', { state: 'visible' })
  await page.waitForFunction(() => (document.getElementById('qr') as HTMLImageElement).naturalWidth > 0)
  const qr = await page.$eval('#qr', img => ({ src: (img as HTMLImageElement).src, width: (img as HTMLImageElement).getBoundingClientRect().width }))
  t.match(qr.src, /^data:image\/svg\+xml;base64,/)
  t.ok(qr.width > 100, 'the QR code is on screen')
  const secret = (await page.textContent('#secret'))!
  t.match(secret, /^[A-Z2-7]{32}$/, 'the secret, base32')
  t.match(await out(), { secret, otpauthUrl: /^otpauth:\/\/totp\// })

  // confirm with the code an app would show now: the recovery codes are shown, the QR and secret are gone
  const confirmedAt = Date.now()
  await page.fill('#mfa-confirm input[name=code]', totpAt(secret, confirmedAt))
  await page.click('#mfa-confirm button')
  await page.waitForSelector('#recovery', { state: 'visible' })
  const recoveryCodes = await page.$$eval('#recovery-codes li', items => items.map(i => i.textContent!))
  t.equal(recoveryCodes.length, 10)
  for (const code of recoveryCodes) t.match(code, /^[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}$/)
  t.equal(await page.isHidden('#mfa-confirm'), true)
  t.equal(await page.getAttribute('#qr', 'src'), null)
  t.equal(await page.textContent('#secret'), '')

  await page.click('#logout')
  await page.waitForSelector('#status:text("signed out")')
  t.equal(await page.isHidden('#recovery'), true, 'the recovery codes leave the page at sign-out')

  // the password alone asks for a code: no session, no cookie
  const signInWithPassword = async () => {
    await page.fill('#login input[name=email]', account.email)
    await page.fill('#login input[name=password]', account.password)
    await page.click('#login button')
    await page.waitForSelector('#login-mfa', { state: 'visible' })
    const answer = await out()
    t.equal(answer.code, 'mfa_required')
    t.same(answer.methods, ['totp', 'recovery_code'])
    t.equal(await page.textContent('#status'), 'signed out')
    t.same(await refreshCookie(), [], 'no cookie before the second factor')
  }
  await signInWithPassword()

  // a wrong code is refused and the page asks again
  const wrong = ['000000', '111111'].find(c => ![-1, 0, 1, 2, 3].some(k => totpAt(secret, confirmedAt + k * 30_000) === c))!
  await page.fill('#login-mfa input[name=code]', wrong)
  await page.click('#login-mfa button')
  await page.waitForFunction(() => document.getElementById('out')!.textContent!.includes('mfa_code_invalid'))
  t.equal(await page.isVisible('#login-mfa'), true)

  // the step of the confirmation is spent: an app's next code (30 s on) is what a person would type now
  const finished = page.waitForResponse(r => r.url().endsWith('/login/mfa') && r.request().method() === 'POST' && r.status() === 200)
  await page.fill('#login-mfa input[name=code]', totpAt(secret, confirmedAt + 30_000))
  await page.click('#login-mfa button')
  const body = await (await finished).json() as { accessToken: string, refreshToken?: string }
  await page.waitForSelector(`#status:text("signed in as ${account.email}")`)
  t.equal(body.refreshToken, undefined, 'cookie mode: no refresh token in the body')
  t.same(pick(claims(body.accessToken)), { aal: 'aal2', amr: ['pwd', 'otp'] })
  t.equal((await refreshCookie()).length, 1, 'the refresh cookie is set')
  t.equal(await page.isHidden('#login-mfa'), true)

  await page.click('#me')
  await page.waitForFunction(() => document.getElementById('out')!.textContent!.includes('"mfa"'))
  t.match(await out(), { email: account.email, mfa: { totp: true, recoveryCodesLeft: 10 } })

  // a recovery code in the same field (typed in capitals, as people do) works once
  await page.click('#logout')
  await page.waitForSelector('#status:text("signed out")')
  await signInWithPassword()
  const recovered = page.waitForResponse(r => r.url().endsWith('/login/mfa') && r.status() === 200)
  await page.fill('#login-mfa input[name=code]', recoveryCodes[0]!.toUpperCase())
  await page.click('#login-mfa button')
  t.same(pick(claims((await (await recovered).json() as { accessToken: string }).accessToken)), { aal: 'aal2', amr: ['pwd', 'rec'] })
  await page.waitForSelector(`#status:text("signed in as ${account.email}")`)
  await page.click('#me')
  await page.waitForFunction(() => document.getElementById('out')!.textContent!.includes('"mfa"'))
  t.match(await out(), { mfa: { totp: true, recoveryCodesLeft: 9 } })
  t.same(errors, [], 'no script errors, nothing refused by the page\'s policy')
})

t.test('development mail: the links in the .eml files verify the address and reset the password in a browser', { skip: needsChromium }, async t => {
  // as `npm start` runs: no SMTP_URL, so mail lands in DATA_DIR/mail and APP_URL is this server
  const dataDir = mkdtempSync(join(tmpdir(), 'auth-mail-'))
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }))
  const server = await liveServer(t, { DATA_DIR: dataDir })
  const account = newAccount()
  const post = (path: string, body: unknown) => fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  t.equal((await post('/register', account)).status, 201)
  t.equal((await post('/password/forgot', { email: account.email })).status, 202)

  const linkTo = async (path: string) => {
    for (let i = 0; i < 100; i++) {
      const dir = join(dataDir, 'mail')
      for (const file of existsSync(dir) ? readdirSync(dir) : []) {
        const mail = await simpleParser(readFileSync(join(dir, file)))
        const link = (mail.text ?? '').match(/https?:\/\/\S+/)?.[0]
        if (link?.startsWith(`http://localhost:${server.port}${path}?token=`)) return link
      }
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    throw new Error(`no ${path} link in ${dataDir}/mail`)
  }

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] })
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  const errors: string[] = []
  page.on('pageerror', e => errors.push(e.message))

  const verifyLink = await linkTo('/verify-email')
  t.ok(server.output().includes(`mail (development, no SMTP_URL): Verify your email address ${verifyLink}`), 'the link is in the log too')
  await page.goto(verifyLink)
  await page.waitForSelector('#result:text("Your email address is verified")')
  t.equal(new URL(page.url()).search, '', 'the token leaves the address bar')

  await page.goto(await linkTo('/reset-password'))
  const newPassword = 'a new passphrase typed in a browser'
  await page.fill('#reset input[name=newPassword]', newPassword)
  await page.click('#reset button')
  await page.waitForSelector('#result:text("Your password is changed")')
  t.equal((await post('/login', { email: account.email, password: account.password })).status, 401)
  const signedIn = await post('/login', { email: account.email, password: newPassword })
  t.equal(signedIn.status, 200)
  const me = await fetch(`${server.url}/me`, { headers: { authorization: `Bearer ${(await signedIn.json() as { accessToken: string }).accessToken}` } })
  t.equal((await me.json() as { emailVerified: boolean }).emailVerified, true)
  t.same(errors, [], 'no script errors')
})
