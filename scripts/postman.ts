import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const Converter = require('openapi-to-postmanv2') as {
  convertV2: (input: { type: 'json', data: unknown }, options: Record<string, unknown>, cb: (err: Error | null, result: { result: boolean, reason?: string, output: { data: Collection }[] }) => void) => void
}

interface Request { name?: string, method: string, url: { path: string[], variable?: { key: string, value: string }[] }, body?: { raw?: string } }
interface Item { id?: string, name: string, description?: string, item?: Item[], request?: Request, response?: { id?: string }[], event?: unknown[] }
interface Collection { info: Record<string, unknown>, item: Item[], variable?: { key: string, value: string }[], event?: unknown[] }
interface Problem { code: string }
interface Operation { operationId: string, responses: Record<string, { content?: Record<string, { example?: Problem, schema: { examples?: Problem[] } }> }>, requestBody?: { content: Record<string, { example?: Record<string, string> }> } }
type Spec = { paths: Record<string, Record<string, Operation>> }

/** One request of the walk-through: what it sends besides the spec's example, what its test expects, what it keeps. */
interface Step {
  op: string
  name?: string
  body?: Record<string, string>
  pathVariable?: string
  /** a problem the request gets in a collection run, and why; without it, the documented success */
  problem?: { status: number, why: string }
  keep?: 'tokens' | 'sessionId'
  newAccount?: true
}

// The order a person uses the API in: sign up, look around, sign out, forget the password, sign in again, leave.
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
    name: 'Admin routes',
    description: 'For accounts with the role admin (`npm run user:role -- <email> admin`, then sign in again). The account a collection run creates is a user, so these expect the documented 403.',
    steps: [
      { op: 'listUsers', problem: { status: 403, why: 'a user who is not an admin is refused' } },
      { op: 'revokeUserSessions', pathVariable: '{{userId}}', problem: { status: 403, why: 'a user who is not an admin is refused' } },
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
}

function testScript (step: Step, operation: Operation, status: string) {
  if (step.problem) {
    const media = operation.responses[status]!.content!['application/problem+json']!
    const { code } = media.example ?? media.schema.examples![0]!
    return [
      `pm.test('${step.problem.why}: ${status} ${code}', () => {`,
      `  pm.response.to.have.status(${status});`,
      `  pm.expect(pm.response.json().code).to.eql('${code}');`,
      '});',
    ]
  }
  const keep = step.keep ? [`if (pm.response.code === ${status}) {`, '  const body = pm.response.json();', ...keepScripts[step.keep].map(l => `  ${l}`), '}'] : []
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
      operations.set(operation.operationId, { operation, item, example: operation.requestBody?.content['application/json']?.example ?? {} })
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
      return item
    }),
  }))
  if (unused.size) throw new Error(`the Postman journey leaves out ${[...unused].join(', ')}`)
  return folders
}

/** The Postman collection for the OpenAPI document: deterministic, so it can be committed and checked. */
export async function generatePostmanCollection (spec: Spec): Promise<string> {
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
    ...['email', 'username', 'newUsername', 'bearerToken', 'refreshToken', 'userId', 'sessionId'].map(key => ({ key, value: '' })),
  ]
  return `${JSON.stringify(collection, null, 2)}\n`
}
