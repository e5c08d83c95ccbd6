/* global location, history */
// Cookie mode, two-factor sign-in, passkeys and identity providers: no token ever touches localStorage or document.cookie.
// The WebAuthn library is served from node_modules by this server, as an ES module (no build step).
import { browserSupportsWebAuthn, startAuthentication, startRegistration } from '/demo/vendor/simplewebauthn/index.js'

const MODE = { 'X-Auth-Mode': 'cookie' }
let accessToken = null
let refreshTimer = null
let refreshes = 0
// between /login's 403 mfa_required and /login/mfa: single use, 5 minutes, in memory only
let mfaToken = null

const $ = id => document.getElementById(id)
const show = value => { $('out').textContent = typeof value === 'string' ? value : JSON.stringify(value, null, 2) }

async function call (path, { body, auth = false, method = 'POST' } = {}) {
  const headers = { ...MODE }
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  if (auth && accessToken) headers.Authorization = `Bearer ${accessToken}`
  const res = await fetch(path, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) })
  const data = res.status === 204 ? null : await res.json()
  return { ok: res.ok, status: res.status, data, retryAfter: res.headers.get('retry-after') }
}

function signedIn ({ accessToken: token, expiresIn, user }) {
  const fresh = accessToken === null
  accessToken = token
  // a new session (not a silent refresh) shows the account's passkeys
  if (fresh) listPasskeys()
  $('status').textContent = `signed in as ${user.email}`
  clearTimeout(refreshTimer)
  // renew 25 s before the access token expires (at least a second from now)
  refreshTimer = setTimeout(silentRefresh, Math.max(1, expiresIn - 25) * 1000)
}

function signedOut (why = 'signed out') {
  accessToken = null
  clearTimeout(refreshTimer)
  $('status').textContent = why
  endEnrolment()
  $('recovery').hidden = true
  $('recovery-codes').replaceChildren()
  $('passkeys').replaceChildren()
}

async function silentRefresh () {
  // no body: the browser sends the HttpOnly cookie, the header proves this is not a cross-site request
  const res = await call('/refresh')
  if (res.ok) {
    refreshes++
    document.body.dataset.refreshes = String(refreshes)
    signedIn(res.data)
  } else {
    signedOut(`signed out (${res.data.code})`)
  }
  return res
}

function form (id, handler) {
  $(id).addEventListener('submit', async event => {
    event.preventDefault()
    const fields = Object.fromEntries(new FormData(event.target))
    await handler(fields)
  })
}

form('register', async ({ email, password, name }) => {
  const res = await call('/register', { body: name ? { email, password, name } : { email, password } })
  show(res.data)
  if (res.ok) signedIn(res.data)
})

// The answer of /login, /login/passkey and /oauth/token: a session, a refusal, or a request for the second factor.
function signInAnswer (res, firstFactor) {
  if (res.status === 403 && res.data.code === 'mfa_required') {
    mfaToken = res.data.mfaToken
    show({ code: res.data.code, title: res.data.title, methods: res.data.methods })
    $('login-mfa-why').textContent = firstFactor
    $('login-mfa').hidden = false
    $('login-mfa').elements.code.focus()
    return
  }
  show(res.data)
  if (res.ok) signedIn(res.data)
}

form('login', async ({ email, password, rememberMe }) => {
  const res = await call('/login', { body: { email, password, rememberMe: rememberMe === 'on' } })
  signInAnswer(res, 'The password was right.')
})

// The browser's own refusals (cancelled, timed out, no passkey for this site) are errors, not answers.
const ceremonyError = error => show({ error: error.name, code: error.code, message: error.message })

// Discoverable credentials: no email is sent, so the answer never tells whether an account exists.
form('login-passkey', async ({ rememberMe }) => {
  const options = await call('/login/passkey/options')
  if (!options.ok) return show(options.data)
  let response
  try {
    response = await startAuthentication({ optionsJSON: options.data })
  } catch (error) {
    return ceremonyError(error)
  }
  const res = await call('/login/passkey', { body: { response, rememberMe: rememberMe === 'on' } })
  // a passkey without user verification (no PIN, no biometrics) is one factor: a code completes it
  signInAnswer(res, 'The passkey was right, but it did not verify you (no PIN or biometrics).')
})

// Identity providers (OpenID Connect): the API runs the provider's flow and sends this page back a one-time
// code that only this tab's PKCE verifier exchanges. Verifier and state wait in sessionStorage (this tab,
// this origin) while the provider's pages are open, and leave it on the way back.
const PROVIDER_FLOW = 'provider-sign-in'
const base64url = bytes => btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
const randomText = () => base64url(crypto.getRandomValues(new Uint8Array(32)))

async function listProviders () {
  const res = await call('/oauth/providers', { method: 'GET' }).catch(() => null)
  const providers = res?.ok ? res.data.providers : []
  $('providers').replaceChildren(...providers.map(({ id, name }) => {
    const button = Object.assign(document.createElement('button'), { type: 'button', textContent: `Sign in with ${name}` })
    button.addEventListener('click', () => startProviderSignIn(id).catch(error => show({ error: error.name, message: error.message })))
    return button
  }))
  $('login-provider').hidden = providers.length === 0
}

async function startProviderSignIn (id) {
  const verifier = randomText()
  const state = randomText()
  const challenge = base64url(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))))
  const rememberMe = $('login-provider').elements.rememberMe.checked
  sessionStorage.setItem(PROVIDER_FLOW, JSON.stringify({ verifier, state, rememberMe }))
  const query = new URLSearchParams({ redirect_uri: `${location.origin}/demo`, code_challenge: challenge, code_challenge_method: 'S256', state })
  location.assign(`/oauth/${encodeURIComponent(id)}/authorize?${query}`)
}

// Back from the provider with ?code=&state= or ?error=&state=: true when this load was that return.
async function finishProviderSignIn () {
  const query = new URLSearchParams(location.search)
  if (!query.has('state') || !(query.has('code') || query.has('error'))) return false
  // the one-time code leaves the address bar and the history at once
  history.replaceState(null, '', location.pathname)
  const flow = JSON.parse(sessionStorage.getItem(PROVIDER_FLOW) ?? 'null')
  sessionStorage.removeItem(PROVIDER_FLOW)
  // not the sign-in this tab started (a stale or forged link): its code is never exchanged
  const error = flow?.state !== query.get('state') ? 'state_mismatch' : query.get('error')
  if (error) {
    signedOut(`signed out (${error})`)
    show({ error, next: 'sign in again' })
    return true
  }
  const res = await call('/oauth/token', { body: { code: query.get('code'), codeVerifier: flow.verifier, rememberMe: flow.rememberMe } })
  signInAnswer(res, 'The identity provider signed you in.')
  return true
}

// Six digits are a code of the app; anything else is taken for a recovery code (case, spaces, hyphens ignored).
form('login-mfa', async ({ code }) => {
  const typed = code.replace(/\s/g, '')
  const body = /^\d{6}$/.test(typed) ? { mfaToken, code: typed } : { mfaToken, recoveryCode: code }
  const res = await call('/login/mfa', { body })
  if (res.ok) {
    endSecondStep()
    show(res.data)
    signedIn(res.data)
  } else if (res.data.code === 'mfa_token_invalid') {
    // used, expired or too many wrong codes: only a new sign-in gives a new one
    endSecondStep()
    show({ ...res.data, next: 'sign in again' })
  } else if (res.status === 429) {
    show({ ...res.data, next: `wait ${res.retryAfter} s before trying again` })
  } else {
    show(res.data)
  }
})

function endSecondStep () {
  mfaToken = null
  $('login-mfa').reset()
  $('login-mfa').hidden = true
}

// The QR code comes as SVG text; as an <img> data: URL it is only ever an image (no script, no DOM of its own).
const svgDataUrl = svg => `data:image/svg+xml;base64,${btoa(Array.from(new TextEncoder().encode(svg), b => String.fromCharCode(b)).join(''))}`

form('mfa-enroll', async () => {
  const res = await call('/mfa/totp/enroll', { auth: true })
  if (!res.ok) return show(res.data)
  const { secret, otpauthUrl, qrSvg } = res.data
  show({ secret, otpauthUrl })
  $('qr').src = svgDataUrl(qrSvg)
  $('secret').textContent = secret
  $('recovery').hidden = true
  $('mfa-confirm').hidden = false
  $('mfa-confirm').elements.code.focus()
})

form('mfa-confirm', async ({ code }) => {
  const res = await call('/mfa/totp/confirm', { auth: true, body: { code: code.replace(/\s/g, '') } })
  show(res.data)
  if (!res.ok) return
  endEnrolment()
  $('recovery-codes').replaceChildren(...res.data.recoveryCodes.map(c => {
    const item = document.createElement('li')
    item.append(Object.assign(document.createElement('code'), { textContent: c }))
    return item
  }))
  $('recovery').hidden = false
})

function endEnrolment () {
  $('mfa-confirm').reset()
  $('mfa-confirm').hidden = true
  $('qr').removeAttribute('src')
  $('secret').textContent = ''
}

form('passkey-add', async ({ name }) => {
  const options = await call('/passkeys/register/options', { auth: true })
  if (!options.ok) return show(options.data)
  let response
  try {
    response = await startRegistration({ optionsJSON: options.data })
  } catch (error) {
    return ceremonyError(error)
  }
  const res = await call('/passkeys/register', { auth: true, body: name ? { response, name } : { response } })
  show(res.data)
  if (!res.ok) return
  $('passkey-add').reset()
  await listPasskeys()
})

async function listPasskeys () {
  const list = $('passkeys')
  const res = await call('/passkeys', { method: 'GET', auth: true }).catch(() => null)
  if (!accessToken) return list.replaceChildren() // signed out meanwhile
  if (!res?.ok) {
    list.replaceChildren(Object.assign(document.createElement('li'), { textContent: `passkeys not listed (${res?.data?.code ?? 'network error'})` }))
    return
  }
  list.replaceChildren(...res.data.passkeys.map(passkey => {
    const item = document.createElement('li')
    item.dataset.id = passkey.id
    const used = passkey.lastUsedAt ? `last used ${new Date(passkey.lastUsedAt).toLocaleString()}` : 'never used'
    const remove = Object.assign(document.createElement('button'), { type: 'button', textContent: 'Delete' })
    remove.addEventListener('click', async () => {
      const deleted = await call(`/passkeys/${encodeURIComponent(passkey.id)}`, { method: 'DELETE', auth: true })
      show(deleted.ok ? `passkey deleted: ${deleted.status}` : deleted.data)
      await listPasskeys()
    })
    item.append(
      Object.assign(document.createElement('strong'), { textContent: passkey.name ?? 'passkey' }),
      ` (added ${new Date(passkey.createdAt).toLocaleString()}, ${used}${passkey.backedUp ? ', synced' : ''}) `,
      remove,
    )
    return item
  }))
}

if (!browserSupportsWebAuthn()) {
  for (const id of ['login-passkey', 'passkey-add']) $(id).querySelector('button').disabled = true
}

$('me').addEventListener('click', async () => show((await call('/me', { method: 'GET', auth: true })).data))

$('logout').addEventListener('click', async () => {
  const res = await call('/logout', { auth: true })
  show(`sign-out: ${res.status}`)
  signedOut()
})

// Back from a provider, finish that sign-in; else a reload keeps the session: the cookie is still there,
// so ask for a fresh access token.
Promise.all([
  listProviders(),
  finishProviderSignIn().then(finished => finished || silentRefresh().then(res => { if (!res.ok) signedOut() })),
]).finally(() => { document.body.dataset.ready = 'true' })
