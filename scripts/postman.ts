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

interface Request { name?: string, method: string, url: { path: string[], variable?: { key: string, value: string }[] }, body?: { raw?: string } }
interface Item { id?: string, name: string, description?: string, item?: Item[], request?: Request, response?: { id?: string }[], event?: unknown[] }
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
  /** a problem the request gets in a collection run, and why; without it, the documented success */
  problem?: { status: number, why: string }
  /** what the response leaves for later requests, in collection variables */
  keep?: keyof typeof keepScripts
  /** what the request works out before it is sent: a code of the authenticator app, or the next recovery code */
  compute?: 'totpCode' | 'recoveryCode'
  newAccount?: true
}

// The order a person uses the API in: sign up, look around, sign out, forget the password, sign in again,
// turn on two-factor sign-in and sign in with it, leave.
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
    description: 'Registering and signing in opened two sessions: the one this token is not from is signed out by its id.',
    steps: [
      { op: 'getMe' },
      { op: 'listSessions', keep: 'sessionId' },
      { op: 'revokeSession', pathVariable: '{{sessionId}}' },
      { op: 'updateMe', body: { username: '{{newUsername}}' } },
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
    name: 'Admin routes',
    description: 'For accounts with the role admin (`npm run user:role -- <email> admin`, then sign in again). The account a collection run creates is a user, so these expect the documented 403.',
    steps: [
      { op: 'listUsers', problem: { status: 403, why: 'a user who is not an admin is refused' } },
      { op: 'revokeUserSessions', pathVariable: '{{userId}}', problem: { status: 403, why: 'a user who is not an admin is refused' } },
      { op: 'resetUserMfa', pathVariable: '{{userId}}', problem: { status: 403, why: 'a user who is not an admin is refused' } },
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
  // each recovery code works once: take the next one kept
  recoveryCode: [
    "const codes = JSON.parse(pm.collectionVariables.get('recoveryCodes') || '[]');",
    "pm.collectionVariables.set('recoveryCode', codes.shift() || '');",
    "pm.collectionVariables.set('recoveryCodes', JSON.stringify(codes));",
  ],
}

function testScript (step: Step, operation: Operation, status: string) {
  const keep = step.keep ? [`if (pm.response.code === ${status}) {`, '  const body = pm.response.json();', ...keepScripts[step.keep].map(l => `  ${l}`), '}'] : []
  if (step.problem) {
    const media = operation.responses[status]!.content!['application/problem+json']!
    const { code } = media.example ?? media.schema.examples![0]!
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

// A new account per registration, so a second run (or a second click) meets no taken email or username.
function newAccountScript (register: Record<string, string>, update: Record<string, string>) {
  const [local, domain] = register.email!.split('@')
  return [
    'const run = Date.now().toString(36) + Math.random().toString(36).slice(2, 6);',
    `pm.collectionVariables.set('email', \`${local}.\${run}@${domain}\`);`,
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
      const status = step.problem ? String(step.problem.status) : Object.keys(found.operation.responses).find(s => s.startsWith('2'))!
      item.event = [js('test', testScript(step, found.operation, status))]
      if (step.newAccount) item.event.unshift(js('prerequest', newAccountScript(found.example, operations.get('updateMe')!.example)))
      if (step.compute) item.event.unshift(js('prerequest', computeScripts[step.compute]))
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
    ...['email', 'username', 'newUsername', 'bearerToken', 'refreshToken', 'userId', 'sessionId', 'totpSecret', 'totpStep', 'totpCode', 'recoveryCodes', 'recoveryCode', 'mfaToken']
      .map(key => ({ key, value: '' })),
  ]
  return `${JSON.stringify(collection, null, 2)}\n`
}
