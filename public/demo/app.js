// Cookie mode in ~60 lines: no token ever touches localStorage or document.cookie.
const MODE = { 'X-Auth-Mode': 'cookie' }
let accessToken = null
let refreshTimer = null
let refreshes = 0

const $ = id => document.getElementById(id)
const show = value => { $('out').textContent = typeof value === 'string' ? value : JSON.stringify(value, null, 2) }

async function call (path, { body, auth = false, method = 'POST' } = {}) {
  const headers = { ...MODE }
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  if (auth && accessToken) headers.Authorization = `Bearer ${accessToken}`
  const res = await fetch(path, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) })
  const data = res.status === 204 ? null : await res.json()
  return { ok: res.ok, status: res.status, data }
}

function signedIn ({ accessToken: token, expiresIn, user }) {
  accessToken = token
  $('status').textContent = `signed in as ${user.email}`
  clearTimeout(refreshTimer)
  // renew 25 s before the access token expires (at least a second from now)
  refreshTimer = setTimeout(silentRefresh, Math.max(1, expiresIn - 25) * 1000)
}

function signedOut (why = 'signed out') {
  accessToken = null
  clearTimeout(refreshTimer)
  $('status').textContent = why
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

form('login', async ({ email, password, rememberMe }) => {
  const res = await call('/login', { body: { email, password, rememberMe: rememberMe === 'on' } })
  show(res.data)
  if (res.ok) signedIn(res.data)
})

$('me').addEventListener('click', async () => show((await call('/me', { method: 'GET', auth: true })).data))

$('logout').addEventListener('click', async () => {
  const res = await call('/logout', { auth: true })
  show(`sign-out: ${res.status}`)
  signedOut()
})

// A reload keeps the session: the cookie is still there, so ask for a fresh access token.
silentRefresh().then(res => { if (!res.ok) signedOut() }).finally(() => { document.body.dataset.ready = 'true' })
