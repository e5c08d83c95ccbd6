import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const Converter = require('openapi-to-postmanv2') as {
  convertV2: (input: { type: 'json', data: unknown }, options: Record<string, unknown>, cb: (err: Error | null, result: { result: boolean, reason?: string, output: { data: Collection }[] }) => void) => void
}

interface Item { id?: string, name: string, item?: Item[], request?: { method: string, url: { path: string[] }, body?: { raw?: string } }, response?: { id?: string }[], event?: unknown[] }
interface Collection { info: Record<string, unknown>, item: Item[], variable?: { key: string, value: string }[], event?: unknown[] }

// Scripts that carry the tokens from one request to the next in collection variables.
const keepTokens = [
  'const body = pm.response.json();',
  "if (body.accessToken) pm.collectionVariables.set('bearerToken', body.accessToken);",
  "if (body.refreshToken) pm.collectionVariables.set('refreshToken', body.refreshToken);",
]
const expectSuccess = ["pm.test('answers with the documented success', () => pm.response.to.be.success);"]

const key = (item: Item) => `${item.request!.method} /${item.request!.url.path.join('/')}`
const usesRefreshToken = new Set(['POST /refresh', 'POST /logout'])
const setsTokens = new Set(['POST /register', 'POST /login', 'POST /refresh'])

function decorate (item: Item) {
  delete item.id
  for (const r of item.response ?? []) delete r.id
  if (item.item) { item.item.forEach(decorate); return }
  if (usesRefreshToken.has(key(item)) && item.request!.body?.raw) {
    const body = JSON.parse(item.request!.body.raw) as Record<string, unknown>
    body.refreshToken = '{{refreshToken}}'
    item.request!.body.raw = JSON.stringify(body, null, 2)
  }
  const exec = setsTokens.has(key(item)) ? [...expectSuccess, ...keepTokens] : expectSuccess
  item.event = [{ listen: 'test', script: { type: 'text/javascript', exec } }]
}

/** The Postman collection for the OpenAPI document: deterministic, so it can be committed and checked. */
export async function generatePostmanCollection (spec: unknown): Promise<string> {
  const collection = await new Promise<Collection>((resolve, reject) => {
    Converter.convertV2({ type: 'json', data: spec }, { folderStrategy: 'Tags', parametersResolution: 'Example', optimizeConversion: false }, (err, result) => {
      if (err) return reject(err)
      if (!result.result) return reject(new Error(result.reason))
      resolve(result.output[0]!.data)
    })
  })
  delete collection.info._postman_id
  collection.item.forEach(decorate)
  collection.variable = [
    { key: 'baseUrl', value: 'http://127.0.0.1:3000' },
    { key: 'bearerToken', value: '' },
    { key: 'refreshToken', value: '' },
  ]
  return `${JSON.stringify(collection, null, 2)}\n`
}
