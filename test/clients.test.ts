import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import t from 'tap'
import { liveServer } from './live-server.js'
import { runReadmeBlock } from './readme.js'

const require = createRequire(import.meta.url)
const newman = require('newman') as { run: (options: Record<string, unknown>, cb: (err: Error | null, summary: NewmanSummary) => void) => void }
interface NewmanSummary {
  run: {
    failures: { error: { message: string }, source?: { name?: string } }[]
    executions: { item: { name: string }, response?: { code: number } }[]
  }
}
interface Item { name: string, item?: Item[], request?: { method: string, url: { path: string[] } } }

// The committed collection, its requests in the order a person signs up, in, out and around, and leaves.
const FLOW = ['POST /register', 'POST /login', 'GET /me', 'GET /sessions', 'PATCH /me', 'POST /email/verify/resend', 'POST /refresh', 'POST /logout',
  'POST /password/forgot', 'POST /login', 'POST /me/password', 'DELETE /me']

function flowCollection () {
  const collection = JSON.parse(readFileSync(new URL('../openapi/auth-api.postman_collection.json', import.meta.url), 'utf8'))
  const all: Item[] = []
  const walk = (items: Item[]) => items.forEach(i => (i.item ? walk(i.item) : all.push(i)))
  walk(collection.item)
  const byKey = new Map(all.map(i => [`${i.request!.method} /${i.request!.url.path.join('/')}`, i]))
  collection.item = FLOW.map(k => {
    const item = byKey.get(k)
    if (!item) throw new Error(`the collection has no ${k}`)
    return item
  })
  return collection
}

t.test('Postman: the committed collection runs green in newman with the spec\'s own examples', async t => {
  const server = await liveServer(t)
  const summary = await new Promise<NewmanSummary>((resolve, reject) => {
    newman.run({ collection: flowCollection(), envVar: [{ key: 'baseUrl', value: server.url }], reporters: [] },
      (err, s) => (err ? reject(err) : resolve(s)))
  })
  t.same(summary.run.failures.map(f => `${f.source?.name}: ${f.error.message}`), [])
  t.same(summary.run.executions.map(e => e.response?.code), [201, 200, 200, 200, 200, 202, 200, 204, 202, 200, 204, 204])
})

const hasHttpie = (() => {
  try {
    execFileSync('http', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()

// CI installs HTTPie (Debian's httpie); a developer without it sees this test skipped, not passed.
t.test('HTTPie: the README block runs as written', { skip: !hasHttpie && !process.env.CI ? 'HTTPie (`http`) is not installed' : false }, async t => {
  const server = await liveServer(t)
  const run = await runReadmeBlock('httpie', server.port, true)
  t.equal(run.code, 0, run.output)
  t.match(run.output, /"email": "grace@example.com"/)
  t.match(run.output, /"refreshExpiresIn": 2592000/)
  t.match(run.output, /HTTP\/1.1 204 No Content/)
  t.match(run.output, /"code": "validation_failed"/)
  t.match(run.output, /"path": "\/email"/)
})
