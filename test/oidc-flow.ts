// The client's side of signing in with an identity provider, as the tests drive it: PKCE, the authorize
// redirect, the provider's pages (test/oidc-provider.ts), the callback, and POST /oauth/token.
import { createHash, randomBytes } from 'node:crypto'
import { post, type TestApp, type TokenBody } from './helper.js'
import type { ProviderAccount, TestProvider } from './oidc-provider.js'

/** The client redirect URIs of the tests (OAUTH_REDIRECT_URIS): a web app and a mobile app. */
export const WEB = 'https://app.example.com/oauth/callback'
export const MOBILE = 'com.example.app:/oauth'

/** The callback the provider's client is registered with: PUBLIC_URL (the default, port 3000) + /oauth/<id>/callback. */
export const callbackFor = (id: string) => `http://localhost:3000/oauth/${id}/callback`

/** The OIDC_<ID>_… settings of one provider. */
export function providerEnv (id: string, op: Pick<TestProvider, 'issuer' | 'clientId' | 'clientSecret'>, name?: string): Record<string, string> {
  const prefix = `OIDC_${id.toUpperCase().replace(/-/g, '_')}_`
  return {
    [`${prefix}ISSUER`]: op.issuer,
    [`${prefix}CLIENT_ID`]: op.clientId,
    [`${prefix}CLIENT_SECRET`]: op.clientSecret,
    ...(name ? { [`${prefix}NAME`]: name } : {}),
  }
}

/** The settings of the test providers (by id), with both test redirect URIs allowed. */
export function oidcEnv (providers: Record<string, Pick<TestProvider, 'issuer' | 'clientId' | 'clientSecret'>>, extra: Record<string, string> = {}): Record<string, string> {
  return {
    OIDC_PROVIDERS: Object.keys(providers).join(','),
    ...Object.assign({}, ...Object.entries(providers).map(([id, op]) => providerEnv(id, op))),
    OAUTH_REDIRECT_URIS: `${WEB},${MOBILE}`,
    ...extra,
  }
}

/** A PKCE pair (RFC 7636, S256). */
export function pkce () {
  const verifier = randomBytes(32).toString('base64url')
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') }
}

let people = 0
/** A new person at the provider (a unique sub and email, verified unless said otherwise). */
export function person (op: TestProvider, over: Partial<ProviderAccount> = {}): ProviderAccount {
  people++
  const sub = `sub-${process.pid}-${people}-${randomBytes(3).toString('hex')}`
  const account: ProviderAccount = { sub, email: `${sub}@idp.example.com`, email_verified: true, name: `Person ${people}`, ...over }
  op.accounts.set(account.sub, account)
  return account
}

export interface AuthorizeParams { redirectUri?: string, challenge?: string, method?: string | undefined, state?: string | undefined }

/** GET /oauth/<id>/authorize with these parameters (S256 and the web redirect URI unless said otherwise). */
export function authorize (app: TestApp, id: string, params: AuthorizeParams = {}) {
  const query = new URLSearchParams({ redirect_uri: params.redirectUri ?? WEB, code_challenge: params.challenge ?? pkce().challenge })
  if (params.method !== undefined) query.set('code_challenge_method', params.method)
  else if (!('method' in params)) query.set('code_challenge_method', 'S256')
  if (params.state !== undefined) query.set('state', params.state)
  return app.inject({ method: 'GET', url: `/oauth/${id}/authorize?${query}` })
}

/** The provider's redirect back to the API, as the browser follows it. */
export const callback = (app: TestApp, url: URL) => app.inject({ method: 'GET', url: url.pathname + url.search })

export interface Flow {
  /** the answer of /authorize (a redirect to the provider) */
  start: Awaited<ReturnType<typeof authorize>>
  /** the provider's redirect to our callback (its code, our state, iss) */
  back: URL
  /** the answer of the callback */
  res: Awaited<ReturnType<typeof callback>>
  /** where the callback sends the browser: the client's redirect URI with its answer */
  location: URL
  verifier: string
}

/** From the client's /authorize to the callback's redirect, `sub` signing in at the provider. */
export async function flow (app: TestApp, op: TestProvider, sub: string | undefined, params: AuthorizeParams & { provider?: string } = {}): Promise<Flow> {
  const { verifier, challenge } = pkce()
  const start = await authorize(app, params.provider ?? 'test', { challenge, ...params })
  if (start.statusCode !== 302) throw new Error(`authorize: ${start.statusCode} ${start.body}`)
  op.signInAs = sub
  const back = await op.follow(String(start.headers.location))
  const res = await callback(app, back)
  if (res.statusCode !== 302) throw new Error(`callback: ${res.statusCode} ${res.body}`)
  return { start, back, res, location: new URL(String(res.headers.location)), verifier }
}

export const exchange = (app: TestApp, body: Record<string, unknown>, headers: Record<string, string> = {}) => post(app, '/oauth/token', body, headers)

/** A whole sign-in of `sub` through the provider: the flow and the token response of POST /oauth/token. */
export async function signInWith (app: TestApp, op: TestProvider, sub: string, params: AuthorizeParams & { provider?: string } = {}, extra: Record<string, unknown> = {}) {
  const f = await flow(app, op, sub, params)
  const code = f.location.searchParams.get('code')
  if (!code) throw new Error(`no code: ${f.location.href}`)
  const res = await exchange(app, { code, codeVerifier: f.verifier, ...extra })
  if (res.statusCode !== 200) throw new Error(`/oauth/token: ${res.statusCode} ${res.body}`)
  return { ...f, code, tokens: res.json() as TokenBody }
}

/**
 * The token of the last development mail (no SMTP_URL: logged with its link) to `email` with this
 * subject, after sending what is due.
 */
export async function mailedToken (app: TestApp, email: string, subject: string): Promise<string> {
  await app.mailer.flush()
  const links = app.logs.map(l => JSON.parse(l) as { mail?: { to: string, subject: string, link: string } })
    .filter(l => l.mail?.to === email && l.mail.subject === subject).map(l => l.mail!.link)
  const token = links.length ? new URL(links.at(-1)!).searchParams.get('token') : null
  if (!token) throw new Error(`no mail "${subject}" to ${email}`)
  return token
}

/** Audit lines of one event, parsed. */
export const auditLines = (app: TestApp, event: string) => app.logs.map(l => JSON.parse(l) as Record<string, unknown>).filter(l => l.audit === event)
