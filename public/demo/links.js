/* global location, history */
// /reset-password?token=… asks for a new password; /verify-email?token=… verifies at once, and
// /confirm-email?token=… makes the new address the account's.
// The token leaves the address bar before anything else happens, so it is not kept in history.
const token = new URLSearchParams(location.search).get('token') ?? ''
history.replaceState(null, '', location.pathname)
const result = document.getElementById('result')
const title = document.getElementById('title')

async function post (path, body) {
  const res = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  if (res.ok) return null
  const problem = await res.json().catch(() => ({}))
  return problem.detail ?? problem.title ?? `HTTP ${res.status}`
}

if (location.pathname === '/verify-email') {
  title.textContent = 'Verify your email address'
  post('/email/verify', { token }).then(error => {
    result.textContent = error ?? 'Your email address is verified. You can close this page.'
  })
} else if (location.pathname === '/confirm-email') {
  title.textContent = 'Confirm your new email address'
  post('/email/change/confirm', { token }).then(error => {
    result.textContent = error ?? 'This is now the email address of your account; every session has been signed out. Sign in with the new address.'
  })
} else {
  title.textContent = 'Choose a new password'
  const form = document.getElementById('reset')
  form.hidden = false
  form.addEventListener('submit', async event => {
    event.preventDefault()
    const error = await post('/password/reset', { token, newPassword: new FormData(form).get('newPassword') })
    result.textContent = error ?? 'Your password is changed and every session has been signed out. Sign in with the new password.'
    if (!error) form.hidden = true
  })
}
