// The requests the loads send, each from a list it cycles through, and the accounts they sign in as.
import type autocannon from 'autocannon'
import { DURATION, ROUNDS, WARMUP } from './harness.js'

const json = { 'content-type': 'application/json' }
const cycle = <T>(items: T[]) => {
  let i = 0
  return () => items[i++ % items.length]!
}

/** Enough refresh tokens for every warm-up and round of one side at up to 4,000 rotations a second. */
export const REFRESH_TOKENS_PER_SIDE = (WARMUP + ROUNDS * DURATION) * 4000

/** GET /me, each request with the next access token. */
export function meRequest (accessTokens: string[]): autocannon.Request {
  const next = cycle(accessTokens)
  return { method: 'GET', path: '/me', setupRequest: req => ({ ...req, headers: { authorization: `Bearer ${next()}` } }) }
}

/** POST /refresh, each request a distinct token while they last. */
export function refreshRequest (refreshTokens: string[]): autocannon.Request {
  const next = cycle(refreshTokens)
  return { method: 'POST', path: '/refresh', headers: json, setupRequest: req => ({ ...req, body: JSON.stringify({ refreshToken: next() }) }) }
}

export interface Account { email: string, password: string }
/** POST /login, each request the next account. */
export function loginRequest (accounts: Account[]): autocannon.Request {
  const next = cycle(accounts)
  return { method: 'POST', path: '/login', headers: json, setupRequest: req => ({ ...req, body: JSON.stringify(next()) }) }
}

/** `count` accounts signed up through the API, with the tokens of the session each sign-up opened. */
export function registerAccounts (api: string, count: number) {
  return Promise.all(Array.from({ length: count }, async (_, i) => {
    const account = { email: `bench${i}@example.com`, password: `a long bench passphrase ${i}` }
    const res = await fetch(`${api}/register`, { method: 'POST', headers: json, body: JSON.stringify(account) })
    if (res.status !== 201) throw new Error(`sign-up answered ${res.status}: ${await res.text()}`)
    return { account, ...(await res.json() as { accessToken: string, refreshToken: string, user: { id: string } }) }
  }))
}
