// A real OpenID provider (oidc-provider, OpenID certified) in the test process, with a client registered
// for the API's callback and scripted sign-ins: the test names the account that signs in next, or
// leaves it to a person (a browser test) filling in the provider's sign-in page.
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose'
import Provider from 'oidc-provider'

/** What the middleware here reads of Koa's context. */
type Context = Parameters<Parameters<Provider['use']>[0]>[0]

export interface ProviderAccount { sub: string, email?: string, email_verified?: boolean, name?: string }

export interface TestProvider {
  issuer: string
  port: number
  clientId: string
  clientSecret: string
  /** accounts the provider knows, by sub */
  accounts: Map<string, ProviderAccount>
  /** who signs in at the next interaction; undefined: the sign-in page waits for a person */
  signInAs: string | undefined
  /** the next interaction is refused (error=access_denied) */
  deny: boolean
  /** rewrites the claims of the ID tokens the token endpoint sends, re-signed with the provider's key (or `signWith`) */
  tamper: ((claims: JWTPayload) => JWTPayload) | undefined
  signWith: CryptoKey | undefined
  /** stops answering (the port is closed) */
  stop: () => Promise<void>
  /** answers again, on the same port */
  start: () => Promise<void>
  /** the provider's sign-in flow as a new browser would run it: from an authorization URL to the redirect back to the API (not followed) */
  follow: (authorizeUrl: string) => Promise<URL>
}

const PAGE = (uid: string) => `<!doctype html><html><head><meta charset="utf-8"><title>Test provider</title></head><body>
<h1>Test provider</h1>
<form method="post" action="/interaction/${uid}"><label>Account <input name="account" autocomplete="username"></label>
<button type="submit">Continue</button></form></body></html>`

async function readForm (ctx: Context): Promise<URLSearchParams> {
  const chunks: Buffer[] = []
  for await (const chunk of ctx.req) chunks.push(chunk as Buffer)
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'))
}

/**
 * Starts the provider on `port` (0: any free one). `redirectUris` are the API's callbacks registered
 * for the client (PUBLIC_URL/oauth/<id>/callback).
 */
export async function startTestProvider (options: { redirectUris: string[], port?: number, clientId?: string, clientSecret?: string }): Promise<TestProvider> {
  const clientId = options.clientId ?? 'auth-api-test'
  const clientSecret = options.clientSecret ?? 'a-test-client-secret-of-some-length'
  const { privateKey } = await generateKeyPair('RS256', { extractable: true })
  const jwk = { ...await exportJWK(privateKey), kid: 'test-key-1', use: 'sig', alg: 'RS256' }

  let server: Server = createServer()
  server.listen(options.port ?? 0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as AddressInfo).port
  const issuer = `http://127.0.0.1:${port}`

  const state: Pick<TestProvider, 'signInAs' | 'deny' | 'tamper' | 'signWith'> = { signInAs: undefined, deny: false, tamper: undefined, signWith: undefined }
  const accounts = new Map<string, ProviderAccount>()

  const provider = new Provider(issuer, {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: options.redirectUris,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_post',
    }],
    jwks: { keys: [jwk] },
    cookies: { keys: ['test-provider-cookie-key'] },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    // the claims go in the ID token itself, as Google's and Microsoft's do
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    ttl: { AccessToken: 600, AuthorizationCode: 60, Grant: 3600, IdToken: 600, Interaction: 600, Session: 3600 },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    findAccount: async (_ctx, id) => {
      const account = accounts.get(id)
      return account && { accountId: id, claims: async () => ({ ...account }) }
    },
  })
  provider.on('server_error', (_ctx, err) => { console.error('test provider error', err) })

  async function finish (ctx: Context, accountId: string | undefined) {
    const details = await provider.interactionDetails(ctx.req, ctx.res)
    let result: Record<string, unknown>
    if (state.deny) {
      state.deny = false
      result = { error: 'access_denied', error_description: 'The user cancelled' }
    } else if (details.prompt.name === 'login') {
      if (!accountId || !accounts.has(accountId)) {
        ctx.status = 400
        ctx.body = 'unknown account'
        return
      }
      result = { login: { accountId } }
    } else {
      const grant = new provider.Grant({ accountId: details.session!.accountId, clientId: String(details.params.client_id) })
      grant.addOIDCScope(String(details.params.scope))
      result = { consent: { grantId: await grant.save() } }
    }
    const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false })
    ctx.status = 303
    ctx.redirect(returnTo)
  }

  provider.use(async (ctx, next) => {
    const match = /^\/interaction\/([^/]+)$/.exec(ctx.path)
    if (match) {
      if (ctx.method === 'POST') return finish(ctx, (await readForm(ctx)).get('account') ?? undefined)
      const details = await provider.interactionDetails(ctx.req, ctx.res)
      // consent, and scripted sign-ins, need no page
      if (details.prompt.name !== 'login' || state.signInAs !== undefined || state.deny) return finish(ctx, state.signInAs)
      ctx.type = 'html'
      ctx.body = PAGE(match[1]!)
      return
    }
    await next()
    const body = ctx.body as { id_token?: string } | undefined
    if (ctx.path === '/token' && state.tamper && body && typeof body.id_token === 'string') {
      const header = decodeProtectedHeader(body.id_token)
      const claims = state.tamper(decodeJwt(body.id_token))
      ctx.body = { ...body, id_token: await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: header.kid ?? jwk.kid }).sign(state.signWith ?? privateKey) }
    }
  })

  const handler = provider.callback()
  server.on('request', handler)

  async function follow (authorizeUrl: string): Promise<URL> {
    // a fresh browser each time: no provider session carries over, so the next sign-in is signInAs's
    const jar = new Map<string, string>()
    let url = new URL(authorizeUrl)
    for (let hop = 0; hop < 20; hop++) {
      if (url.origin !== issuer) return url
      const res = await fetch(url, { redirect: 'manual', headers: { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') } })
      for (const line of res.headers.getSetCookie()) {
        const [pair] = line.split(';')
        const at = pair!.indexOf('=')
        jar.set(pair!.slice(0, at), pair!.slice(at + 1))
      }
      const location = res.headers.get('location')
      if (!location) throw new Error(`the provider answered ${res.status} without a redirect: ${(await res.text()).slice(0, 200)}`)
      await res.arrayBuffer()
      url = new URL(location, url)
    }
    throw new Error('too many redirects at the provider')
  }

  const test: TestProvider = {
    issuer,
    port,
    clientId,
    clientSecret,
    accounts,
    get signInAs () { return state.signInAs },
    set signInAs (v) { state.signInAs = v },
    get deny () { return state.deny },
    set deny (v) { state.deny = v },
    get tamper () { return state.tamper },
    set tamper (v) { state.tamper = v },
    get signWith () { return state.signWith },
    set signWith (v) { state.signWith = v },
    async stop () {
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => resolve()))
    },
    async start () {
      server = createServer(handler)
      server.listen(port, '127.0.0.1')
      await once(server, 'listening')
    },
    follow,
  }
  return test
}

/** A port nothing listens on yet (for a provider that starts later). */
export async function freePort (): Promise<number> {
  const probe = createServer()
  probe.listen(0, '127.0.0.1')
  await once(probe, 'listening')
  const { port } = probe.address() as AddressInfo
  await new Promise<void>(resolve => probe.close(() => resolve()))
  return port
}
