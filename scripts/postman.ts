import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const Converter = require('openapi-to-postmanv2') as {
  convertV2: (input: { type: 'json', data: unknown }, options: Record<string, unknown>, cb: (err: Error | null, result: { result: boolean, reason?: string, output: { data: Collection }[] }) => void) => void
}
// The converter makes up what the spec gives no example for (a value matching a parameter's pattern, a uri)
// with json-schema-faker, at random: the same seed for each conversion keeps the collection the same.
const schemaFaker = require('openapi-to-postmanv2/assets/json-schema-faker.js') as { option: (options: { random: () => number }) => void }
function seededRandom (seed: number) {
  // mulberry32
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

interface Request { name?: string, method: string, url: { path: string[], query?: { key: string, value: string }[], variable?: { key: string, value: string }[] }, body?: { raw?: string } }
interface Item { id?: string, name: string, description?: string, item?: Item[], request?: Request, response?: { id?: string }[], event?: unknown[], protocolProfileBehavior?: Record<string, unknown> }
interface Collection { info: Record<string, unknown>, item: Item[], variable?: { key: string, value: string }[], event?: unknown[] }
interface Problem { code: string }
interface Operation {
  operationId: string
  responses: Record<string, { content?: Record<string, { example?: Problem, schema: { examples?: Problem[] } }> }>
  requestBody?: { content: Record<string, { example?: Record<string, string>, examples?: Record<string, { value: Record<string, string> }> }> }
}
type Spec = { paths: Record<string, Record<string, Operation>> }

/** One request of the walk-through: what it sends besides the spec's example, what its test expects, what it keeps. */
interface Step {
  op: string
  name?: string
  body?: Record<string, string>
  pathVariable?: string
  /** query parameters set (or, null, left out) over the spec's examples */
  query?: Record<string, string | null>
  /** a problem the request gets in a collection run, and why (and which code, when its status has several); without it, the documented success */
  problem?: { status: number, why: string, code?: string }
  /** what the response leaves for later requests, in collection variables */
  keep?: keyof typeof keepScripts
  /** what the test checks of the response besides its status */
  check?: keyof typeof checkScripts
  /** what the request works out before it is sent: a code of the authenticator app, the next recovery code, or a PKCE pair */
  compute?: keyof typeof computeScripts
  /** skipped when the server has no identity provider (the list of /oauth/providers was empty) */
  needsProvider?: true
  newAccount?: true
}

// The order a person uses the API in: sign up, look around (the sessions, the security history), change the
// email, sign out, forget the password, sign in again, turn on two-factor sign-in and sign in with it, try
// passkeys and an identity provider, leave.
const journey: { name: string, description: string, steps: Step[] }[] = [
  {
    name: 'Sign up and sign in',
    description: 'Each run registers a new account (a fresh `email` and `username`), then signs in: the tokens go to `bearerToken` and `refreshToken`.',
    steps: [
      { op: 'register', body: { email: '{{email}}', password: '{{password}}', username: '{{username}}' }, keep: 'tokens', newAccount: true },
      { op: 'login', body: { email: '{{email}}', password: '{{password}}' }, keep: 'tokens' },
    ],
  },
  {
    name: 'The account and its sessions',
    description: 'Registering and signing in opened two sessions: the one this token is not from is signed out by its id. ' +
      'The security history lists what happened to the account, newest first (a page at a time: pass nextCursor as cursor for the next).',
    steps: [
      { op: 'getMe' },
      // the first page: the example cursor would start the list at the example's time
      { op: 'listSessions', query: { cursor: null }, keep: 'sessionId' },
      { op: 'revokeSession', pathVariable: '{{sessionId}}' },
      { op: 'updateMe', body: { username: '{{newUsername}}' } },
      { op: 'listSecurityEvents', query: { cursor: null }, check: 'ownHistory' },
    ],
  },
  {
    name: 'Email verification',
    description: 'The verification link goes by email; a collection run cannot read it, so it sends the spec\'s example token and gets the documented 400.',
    steps: [
      { op: 'resendVerification' },
      { op: 'verifyEmail', problem: { status: 400, why: 'the example token is not one from an email' } },
    ],
  },
  {
    name: 'Change the email address',
    description: 'The new address (a fresh `newEmail` each run) gets a link and the current one a notice; until the link is followed nothing changes. A collection run cannot read the link, so it sends the spec\'s example token and gets the documented 400.',
    steps: [
      { op: 'changeEmail', body: { newEmail: '{{newEmail}}', currentPassword: '{{password}}' } },
      { op: 'confirmEmailChange', problem: { status: 400, why: 'the example token is not one from an email' } },
    ],
  },
  {
    name: 'Stay signed in, then sign out',
    description: 'A refresh token is single use: the new pair replaces the old one. Signing out ends the session.',
    steps: [
      { op: 'refresh', body: { refreshToken: '{{refreshToken}}' }, keep: 'tokens' },
      { op: 'logout', body: { refreshToken: '{{refreshToken}}' } },
    ],
  },
  {
    name: 'Forgotten password',
    description: 'The reset link goes by email; a collection run sends the spec\'s example token and gets the documented 400, then signs in again with the password it has.',
    steps: [
      { op: 'forgotPassword', body: { email: '{{email}}' } },
      { op: 'resetPassword', problem: { status: 400, why: 'the example token is not one from an email' } },
      { op: 'login', name: 'Sign in again', body: { email: '{{email}}', password: '{{password}}' }, keep: 'tokens' },
    ],
  },
  {
    name: 'Two-factor sign-in',
    description: 'Turn on an authenticator app, sign in with it, turn it off. The secret from enrolment goes to `totpSecret`; a request that needs a code computes it in its pre-request script as an app does (RFC 6238). ' +
      'The server accepts a code of the current 30-second step or one either side, each step once and none before the last accepted: the sign-in uses a step after the confirming one, the other proofs spend recovery codes (kept in `recoveryCodes`).',
    steps: [
      { op: 'enrollTotp', keep: 'totpSecret' },
      { op: 'confirmTotp', body: { code: '{{totpCode}}' }, compute: 'totpCode', keep: 'recoveryCodes' },
      { op: 'regenerateRecoveryCodes', body: { code: '{{recoveryCode}}' }, compute: 'recoveryCode', keep: 'recoveryCodes' },
      { op: 'logout', name: 'Sign out', body: { refreshToken: '{{refreshToken}}' } },
      {
        op: 'login',
        name: 'Sign in with the password: a second factor is asked for',
        body: { email: '{{email}}', password: '{{password}}' },
        problem: { status: 403, why: 'the password alone does not sign in an account with two-factor sign-in' },
        keep: 'mfaToken',
      },
      { op: 'loginMfa', body: { mfaToken: '{{mfaToken}}', code: '{{totpCode}}' }, compute: 'totpCode', keep: 'tokens' },
      { op: 'disableTotp', body: { code: '{{recoveryCode}}' }, compute: 'recoveryCode' },
    ],
  },
  {
    name: 'Passkeys',
    description: 'A passkey is made and used by an authenticator (a phone, a laptop, a security key) through the browser or the platform\'s API; a collection run has none, so it asks for the options of both ceremonies, sends the spec\'s example answers and gets the documented refusals.',
    steps: [
      { op: 'passkeyRegistrationOptions' },
      { op: 'registerPasskey', problem: { status: 400, why: 'the example response is not signed by an authenticator for this challenge' } },
      { op: 'listPasskeys' },
      { op: 'renamePasskey', pathVariable: '01a2082a-4c53-76c6-bedb-c9c808e9776d', problem: { status: 404, why: 'the example id is not a passkey of this account' } },
      { op: 'deletePasskey', pathVariable: '01a2082a-4c53-76c6-bedb-c9c808e9776d', problem: { status: 404, why: 'the example id is not a passkey of this account' } },
      { op: 'passkeyLoginOptions' },
      { op: 'loginPasskey', problem: { status: 401, why: 'the example assertion is not signed by a registered passkey' } },
    ],
  },
  {
    name: 'Sign in with an identity provider',
    description: 'Signing in with Google, Microsoft, Okta… (OpenID Connect) happens in a browser at the provider; a collection run has none, so it starts a sign-in and comes back as a user who cancelled there, and sends the spec\'s example code and id for the documented refusals. ' +
      'The first provider of /oauth/providers goes to `providerId`. A request that starts a flow computes a PKCE pair in its pre-request script as an app does (RFC 7636 S256: `codeVerifier`, `codeChallenge`) and a `clientState` of its own; redirects are not followed, their `Location` is checked. ' +
      '`redirectUri` must be one of the server\'s OAUTH_REDIRECT_URIS (a development server also allows PUBLIC_URL/demo, e.g. http://localhost:3000/demo); a provider that cannot be reached answers 503 provider_unavailable. ' +
      'Against a server with no provider (OIDC_PROVIDERS unset) the list is empty and the requests that need one (authorize, callback, link) are skipped with pm.execution.skipRequest(); the others run and pass as with a provider.',
    steps: [
      { op: 'listIdentityProviders', keep: 'providerId' },
      {
        op: 'authorizeWithProvider',
        pathVariable: '{{providerId}}',
        query: { redirect_uri: '{{redirectUri}}', code_challenge: '{{codeChallenge}}', state: '{{clientState}}' },
        compute: 'pkce',
        needsProvider: true,
        keep: 'providerState',
      },
      {
        op: 'identityProviderCallback',
        name: 'The provider sends back a user who cancelled',
        pathVariable: '{{providerId}}',
        query: { state: '{{providerState}}', error: 'access_denied', code: null, error_description: null, iss: null },
        needsProvider: true,
        check: 'cancelled',
      },
      {
        op: 'identityProviderCallback',
        name: 'The same state again',
        pathVariable: '{{providerId}}',
        query: { state: '{{providerState}}', error: 'access_denied', code: null, error_description: null, iss: null },
        needsProvider: true,
        problem: { status: 400, why: 'a state is single use: the cancelled sign-in spent it' },
      },
      { op: 'oauthToken', problem: { status: 400, code: 'oauth_code_invalid', why: 'the example code is not one from a redirect' } },
      {
        op: 'linkIdentity',
        pathVariable: '{{providerId}}',
        body: { redirectUri: '{{redirectUri}}', codeChallenge: '{{codeChallenge}}', state: '{{clientState}}' },
        compute: 'pkce',
        needsProvider: true,
        check: 'linkStarted',
      },
      { op: 'listIdentities', check: 'noIdentities' },
      { op: 'unlinkIdentity', pathVariable: '01a2082a-4c53-76c6-bedb-c9c808e9776e', problem: { status: 404, why: 'the example id is not an identity of this account' } },
    ],
  },
  {
    name: 'Admin routes',
    description: 'For accounts with the role admin (`npm run user:role -- <email> admin`, then sign in again). The account a collection run creates is a user, so these expect the documented 403.',
    steps: [
      { op: 'listUsers', problem: { status: 403, why: 'a user who is not an admin is refused' } },
      { op: 'revokeUserSessions', pathVariable: '{{userId}}', problem: { status: 403, why: 'a user who is not an admin is refused' } },
      { op: 'resetUserMfa', pathVariable: '{{userId}}', problem: { status: 403, why: 'a user who is not an admin is refused' } },
      { op: 'suspendUser', pathVariable: '{{userId}}', problem: { status: 403, why: 'a user who is not an admin is refused' } },
      { op: 'unsuspendUser', pathVariable: '{{userId}}', problem: { status: 403, why: 'a user who is not an admin is refused' } },
      { op: 'listAuditEvents', query: { userId: '{{userId}}', cursor: null }, problem: { status: 403, why: 'a user who is not an admin is refused' } },
    ],
  },
  {
    name: 'Change the password, then delete the account',
    description: 'The password change signs out every other session; deleting the account needs the new password.',
    steps: [
      { op: 'changePassword', body: { currentPassword: '{{password}}', newPassword: '{{newPassword}}' } },
      { op: 'deleteMe', body: { currentPassword: '{{newPassword}}' } },
    ],
  },
  {
    name: 'Public keys and health',
    description: 'No account needed.',
    steps: [{ op: 'getJwks' }, { op: 'health' }, { op: 'ready' }],
  },
]

const js = (listen: 'test' | 'prerequest', exec: string[]) => ({ listen, script: { type: 'text/javascript', exec } })
const keepScripts = {
  tokens: [
    "if (body.accessToken) pm.collectionVariables.set('bearerToken', body.accessToken);",
    "if (body.refreshToken) pm.collectionVariables.set('refreshToken', body.refreshToken);",
    "if (body.user) pm.collectionVariables.set('userId', body.user.id);",
  ],
  sessionId: [
    'const other = body.sessions.find(s => !s.current);',
    "pm.test('lists another session than this one', () => pm.expect(other).to.be.an('object'));",
    "if (other) pm.collectionVariables.set('sessionId', other.id);",
  ],
  totpSecret: [
    "pm.collectionVariables.set('totpSecret', body.secret);",
    '// a new secret: no step of it used yet',
    "pm.collectionVariables.set('totpStep', '');",
  ],
  recoveryCodes: [
    "pm.test('ten recovery codes', () => pm.expect(body.recoveryCodes).to.have.lengthOf(10));",
    "pm.collectionVariables.set('recoveryCodes', JSON.stringify(body.recoveryCodes));",
  ],
  mfaToken: [
    "pm.test('asks for totp or a recovery code', () => pm.expect(body.methods).to.eql(['totp', 'recovery_code']));",
    "pm.collectionVariables.set('mfaToken', body.mfaToken);",
  ],
  providerId: [
    "pm.test('each provider has an id and a name', () => body.providers.forEach(p => {",
    '  pm.expect(p.id).to.match(/^[a-z0-9-]+$/);',
    "  pm.expect(p.name).to.be.a('string').and.not.empty;",
    '}));',
    '// none: the requests that need a provider are skipped',
    "pm.collectionVariables.set('providerId', body.providers.length ? body.providers[0].id : '');",
  ],
  providerState: [
    ...providerUrlChecks("pm.response.headers.get('Location')", 'the redirect'),
    "pm.collectionVariables.set('providerState', provider.state || '');",
  ],
}

// The provider's authorization URL as the contract has it: an authorization code with PKCE S256 towards the
// provider, and the API's own state (128 bits or more) and nonce, never the app's challenge or state.
function providerUrlChecks (href: string, what: string) {
  return [
    "const url = require('url');",
    `const to = url.parse(${href} || '', true);`,
    'const provider = to.query;',
    `pm.test('${what} goes to the provider, not to this API', () => {`,
    "  pm.expect(to.host).to.be.a('string').and.not.empty;",
    "  pm.expect(to.host).to.not.eql(url.parse(pm.variables.replaceIn('{{baseUrl}}')).host);",
    '});',
    `pm.test('${what} asks for an authorization code with PKCE S256, the API\\'s own challenge', () => {`,
    "  pm.expect(provider.response_type).to.eql('code');",
    "  pm.expect(provider.code_challenge_method).to.eql('S256');",
    '  pm.expect(provider.code_challenge).to.match(/^[A-Za-z0-9_-]{43}$/);',
    "  pm.expect(provider.code_challenge).to.not.eql(pm.collectionVariables.get('codeChallenge'));",
    '});',
    `pm.test('${what} carries the API\\'s own state and a nonce, not the app\\'s state', () => {`,
    '  pm.expect(provider.state).to.match(/^[A-Za-z0-9_-]{22,}$/);',
    "  pm.expect(provider.state).to.not.eql(pm.collectionVariables.get('clientState'));",
    "  pm.expect(provider.nonce).to.be.a('string').and.not.empty;",
    '});',
    `pm.test('${what} names the client, openid, and this API\\'s callback for the provider', () => {`,
    "  pm.expect(provider.client_id).to.be.a('string').and.not.empty;",
    "  pm.expect(String(provider.scope).split(' ')).to.include('openid');",
    "  pm.expect(provider.redirect_uri).to.match(new RegExp('/oauth/' + pm.collectionVariables.get('providerId') + '/callback$'));",
    '});',
  ]
}

const checkScripts = {
  cancelled: [
    "const location = pm.response.headers.get('Location') || '';",
    "const back = require('url').parse(location, true).query;",
    "pm.test('back to the app\\'s redirect URI with error=provider_denied and the app\\'s own state', () => {",
    "  pm.expect(location.indexOf(pm.collectionVariables.get('redirectUri') + '?')).to.eql(0);",
    "  pm.expect(back.error).to.eql('provider_denied');",
    "  pm.expect(back.state).to.eql(pm.collectionVariables.get('clientState'));",
    '  pm.expect(back.code).to.be.undefined;',
    '});',
  ],
  linkStarted: providerUrlChecks('body.authorizeUrl', 'authorizeUrl'),
  noIdentities: ["pm.test('lists no identity: the link was started, not finished', () => pm.expect(body.identities).to.eql([]));"],
  ownHistory: [
    "pm.test('lists the sign-in with the password', () => {",
    "  pm.expect(body.events.some(e => e.type === 'login_success' && e.detail.method === 'password')).to.be.true;",
    '});',
    "pm.test('lists the session signed out by its id', () => {",
    "  pm.expect(body.events.some(e => e.type === 'session_revoked' && e.detail.revokedSessionId === pm.collectionVariables.get('sessionId'))).to.be.true;",
    '});',
    "pm.test('newest first', () => {",
    '  const times = body.events.map(e => Date.parse(e.at));',
    '  pm.expect(times).to.eql(times.slice().sort((a, b) => b - a));',
    '});',
  ],
}

const computeScripts = {
  // RFC 6238 as an authenticator app computes it: HMAC-SHA-1 keyed by the base32-decoded secret over the
  // 30-second step (8 bytes, big-endian), dynamic truncation to six digits (RFC 4226, 5.3).
  totpCode: [
    "const cryptoJs = require('crypto-js');",
    'function base32Bytes (text) {',
    "  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';",
    '  const bytes = [];',
    '  let bits = 0;',
    '  let value = 0;',
    "  for (const c of text.replace(/[\\s=]/g, '').toUpperCase()) {",
    '    const digit = alphabet.indexOf(c);',
    "    if (digit < 0) throw new Error('totpSecret is not base32');",
    '    value = ((value << 5) | digit) & 0xfff;',
    '    bits += 5;',
    '    if (bits >= 8) {',
    '      bits -= 8;',
    '      bytes.push((value >>> bits) & 0xff);',
    '    }',
    '  }',
    '  return bytes;',
    '}',
    'function wordArray (bytes) {',
    '  const words = [];',
    '  bytes.forEach((b, i) => { words[i >>> 2] |= b << (24 - (i % 4) * 8); });',
    '  return cryptoJs.lib.WordArray.create(words, bytes.length);',
    '}',
    'function totp (secret, step) {',
    '  const counter = cryptoJs.lib.WordArray.create([Math.floor(step / 0x100000000), step >>> 0], 8);',
    '  const mac = cryptoJs.HmacSHA1(counter, wordArray(base32Bytes(secret)));',
    '  const byte = i => (mac.words[i >>> 2] >>> (24 - (i % 4) * 8)) & 0xff;',
    '  const offset = byte(19) & 0x0f;',
    '  const binary = ((byte(offset) & 0x7f) << 24) | (byte(offset + 1) << 16) | (byte(offset + 2) << 8) | byte(offset + 3);',
    "  return String(binary % 1000000).padStart(6, '0');",
    '}',
    '// A step is accepted once and none before the last accepted: the current one, or the one after the',
    '// last used (the server takes one step ahead, so this works up to 30 s before its time).',
    "const last = Number(pm.collectionVariables.get('totpStep') || 0);",
    'const step = Math.max(Math.floor(Date.now() / 30000), last + 1);',
    "pm.collectionVariables.set('totpStep', String(step));",
    "pm.collectionVariables.set('totpCode', totp(pm.collectionVariables.get('totpSecret'), step));",
  ],
  // RFC 7636 as an app does it for each flow: a verifier of 32 random bytes (43 base64url characters) and its
  // S256 challenge, base64url(SHA-256(verifier)); and a state of the app's own
  pkce: [
    "const cryptoJs = require('crypto-js');",
    "const base64url = words => cryptoJs.enc.Base64.stringify(words).replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '');",
    'const verifier = base64url(cryptoJs.lib.WordArray.random(32));',
    "pm.collectionVariables.set('codeVerifier', verifier);",
    "pm.collectionVariables.set('codeChallenge', base64url(cryptoJs.SHA256(verifier)));",
    "pm.collectionVariables.set('clientState', base64url(cryptoJs.lib.WordArray.random(16)));",
  ],
  // each recovery code works once: take the next one kept
  recoveryCode: [
    "const codes = JSON.parse(pm.collectionVariables.get('recoveryCodes') || '[]');",
    "pm.collectionVariables.set('recoveryCode', codes.shift() || '');",
    "pm.collectionVariables.set('recoveryCodes', JSON.stringify(codes));",
  ],
}

function testScript (step: Step, operation: Operation, status: string) {
  const after = [...step.keep ? keepScripts[step.keep] : [], ...step.check ? checkScripts[step.check] : []]
  // a redirect has no body to read
  const body = status.startsWith('3') ? [] : ['  const body = pm.response.json();']
  const keep = after.length ? [`if (pm.response.code === ${status}) {`, ...body, ...after.map(l => `  ${l}`), '}'] : []
  if (step.problem) {
    const media = operation.responses[status]!.content!['application/problem+json']!
    const documented = media.example ? [media.example] : media.schema.examples!
    const { code } = step.problem.code ? documented.find(p => p.code === step.problem!.code) ?? {} : documented[0]!
    if (!code) throw new Error(`${operation.operationId} documents no ${status} ${step.problem.code}`)
    return [
      `pm.test('${step.problem.why}: ${status} ${code}', () => {`,
      `  pm.response.to.have.status(${status});`,
      `  pm.expect(pm.response.json().code).to.eql('${code}');`,
      '});',
      ...keep,
    ]
  }
  return [`pm.test('answers ${status} as documented', () => pm.response.to.have.status(${status}));`, ...keep]
}

const skipWithoutProvider = [
  '// a server without an identity provider (OIDC_PROVIDERS unset) lists none: nothing to sign in with',
  "if (!pm.collectionVariables.get('providerId')) pm.execution.skipRequest();",
]

// A new account per registration, so a second run (or a second click) meets no taken email or username.
function newAccountScript (register: Record<string, string>, update: Record<string, string>, changeEmail: Record<string, string>) {
  const [local, domain] = register.email!.split('@')
  const [newLocal, newDomain] = changeEmail.newEmail!.split('@')
  return [
    'const run = Date.now().toString(36) + Math.random().toString(36).slice(2, 6);',
    `pm.collectionVariables.set('email', \`${local}.\${run}@${domain}\`);`,
    `pm.collectionVariables.set('newEmail', \`${newLocal}.\${run}@${newDomain}\`);`,
    `pm.collectionVariables.set('username', \`${register.username}_\${run}\`);`,
    `pm.collectionVariables.set('newUsername', \`${update.username}_\${run}\`);`,
  ]
}

function requestItems (items: Item[], into = new Map<string, Item>()) {
  for (const item of items) {
    if (item.item) requestItems(item.item, into)
    else into.set(`${item.request!.method} /${item.request!.url.path.join('/')}`, item)
  }
  return into
}

/** Each operation of the spec by its id, with the request the converter made for it. */
function operationsOf (converted: Item[], spec: Spec) {
  const byKey = requestItems(converted)
  const operations = new Map<string, { operation: Operation, item: Item, example: Record<string, string> }>()
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const [method, operation] of Object.entries(methods)) {
      const item = byKey.get(`${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`)
      if (!item) throw new Error(`the converter made no request for ${operation.operationId}`)
      const media = operation.requestBody?.content['application/json']
      // a body with several examples (one of two fields) starts from the first
      const example = media?.example ?? Object.values(media?.examples ?? {})[0]?.value ?? {}
      operations.set(operation.operationId, { operation, item, example })
    }
  }
  return operations
}

function arrange (operations: ReturnType<typeof operationsOf>): Item[] {
  const unused = new Set(operations.keys())
  const folders = journey.map(({ name, description, steps }) => ({
    name,
    description,
    item: steps.map(step => {
      const found = operations.get(step.op)
      if (!found) throw new Error(`the spec has no operation ${step.op}`)
      unused.delete(step.op)
      const item = structuredClone(found.item)
      delete item.id
      for (const r of item.response ?? []) delete r.id
      if (step.name) item.name = item.request!.name = step.name
      const request = item.request!
      if (step.body) request.body!.raw = JSON.stringify({ ...found.example, ...step.body }, null, 2)
      if (step.pathVariable) request.url.variable![0]!.value = step.pathVariable
      for (const [key, value] of Object.entries(step.query ?? {})) {
        const query = request.url.query!
        const param = query.find(q => q.key === key)
        if (value === null) request.url.query = query.filter(q => q !== param)
        else if (param) param.value = value
        else query.push({ key, value })
      }
      const statuses = Object.keys(found.operation.responses)
      const status = step.problem ? String(step.problem.status) : statuses.find(s => /^[23]/.test(s))!
      // a redirect is the answer, checked where it points: not followed (to the provider, or an app's URI)
      if (statuses.some(s => s.startsWith('3'))) item.protocolProfileBehavior = { ...item.protocolProfileBehavior, followRedirects: false }
      item.event = [js('test', testScript(step, found.operation, status))]
      if (step.newAccount) item.event.unshift(js('prerequest', newAccountScript(found.example, operations.get('updateMe')!.example, operations.get('changeEmail')!.example)))
      const before = [...step.needsProvider ? skipWithoutProvider : [], ...step.compute ? computeScripts[step.compute] : []]
      if (before.length) item.event.unshift(js('prerequest', before))
      return item
    }),
  }))
  if (unused.size) throw new Error(`the Postman journey leaves out ${[...unused].join(', ')}`)
  return folders
}

/** The Postman collection for the OpenAPI document: deterministic, so it can be committed and checked. */
export async function generatePostmanCollection (spec: Spec): Promise<string> {
  schemaFaker.option({ random: seededRandom(1) })
  const collection = await new Promise<Collection>((resolve, reject) => {
    Converter.convertV2({ type: 'json', data: spec }, { folderStrategy: 'Tags', parametersResolution: 'Example', optimizeConversion: false }, (err, result) => {
      if (err) return reject(err)
      if (!result.result) return reject(new Error(result.reason))
      resolve(result.output[0]!.data)
    })
  })
  delete collection.info._postman_id
  const operations = operationsOf(collection.item, spec)
  collection.item = arrange(operations)
  const { example: passwords } = operations.get('changePassword')!
  collection.variable = [
    { key: 'baseUrl', value: 'http://127.0.0.1:3000' },
    { key: 'password', value: passwords.currentPassword! },
    { key: 'newPassword', value: passwords.newPassword! },
    { key: 'redirectUri', value: operations.get('linkIdentity')!.example.redirectUri! },
    ...['email', 'username', 'newUsername', 'newEmail', 'bearerToken', 'refreshToken', 'userId', 'sessionId', 'totpSecret', 'totpStep', 'totpCode', 'recoveryCodes', 'recoveryCode', 'mfaToken',
      'providerId', 'codeVerifier', 'codeChallenge', 'clientState', 'providerState']
      .map(key => ({ key, value: '' })),
  ]
  return `${JSON.stringify(collection, null, 2)}\n`
}
