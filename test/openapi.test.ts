import { readFileSync } from 'node:fs'
import t from 'tap'
import { generateOpenApi } from '../scripts/openapi-document.js'
import { generatePostmanCollection } from '../scripts/postman.js'
import { build, testDatabase } from './helper.js'

t.test('openapi/openapi.json is what the route schemas generate (run `npm run openapi`)', async t => {
  const committed = readFileSync(new URL('../openapi/openapi.json', import.meta.url), 'utf8')
  const generated = await generateOpenApi(await testDatabase())
  t.equal(committed, generated)
  const spec = JSON.parse(generated)
  t.equal(spec.openapi, '3.1.0')
  const operations = Object.values(spec.paths as Record<string, Record<string, { operationId?: string }>>).flatMap(p => Object.values(p))
  t.ok(operations.every(o => o.operationId), 'every operation has an id')
})

t.test('openapi/auth-api.postman_collection.json is what the spec converts to (run `npm run openapi`)', async t => {
  const committed = readFileSync(new URL('../openapi/auth-api.postman_collection.json', import.meta.url), 'utf8')
  const spec = readFileSync(new URL('../openapi/openapi.json', import.meta.url), 'utf8')
  t.equal(committed, await generatePostmanCollection(JSON.parse(spec)))
})

t.test('every route documents its statuses with problem+json and examples', async t => {
  const spec = JSON.parse(readFileSync(new URL('../openapi/openapi.json', import.meta.url), 'utf8'))
  for (const [path, methods] of Object.entries(spec.paths as Record<string, Record<string, { responses: Record<string, { content?: Record<string, { example?: unknown, schema: { examples?: unknown[] } }>, headers?: Record<string, { schema: { type?: string } }> }>, tags?: string[] }>>)) {
    for (const [method, op] of Object.entries(methods)) {
      const where = `${method.toUpperCase()} ${path}`
      t.ok(op.tags?.length, `${where} has a tag`)
      for (const status of ['429', '500', '503']) t.ok(op.responses[status], `${where} documents ${status}`)
      for (const [status, response] of Object.entries(op.responses)) {
        if (status === '204') continue
        // a redirect has no body: its Location is the answer
        if (status.startsWith('3')) {
          t.equal(response.headers?.Location?.schema.type, 'string', `${where} ${status} documents its Location header`)
          continue
        }
        const [type, media] = Object.entries(response.content ?? {})[0] ?? []
        t.ok(media?.example ?? media?.schema.examples?.length, `${where} ${status} has an example`)
        if (Number(status) >= 400) t.equal(type, 'application/problem+json', `${where} ${status} is a problem`)
      }
    }
  }
})

t.test('the served document names the server serving it; the committed one stays as generated', async t => {
  const app = await build(t)
  for (const url of ['/openapi.json', '/docs/json']) {
    const res = await app.inject({ url, headers: { host: 'auth.internal:8443' } })
    t.equal(res.statusCode, 200, url)
    t.same(res.json().servers, [{ url: '/', description: 'This server' }], `${url}: "Try it out" calls the server the page came from`)
  }
  const committed = JSON.parse(readFileSync(new URL('../openapi/openapi.json', import.meta.url), 'utf8'))
  t.same(committed.servers, [{ url: 'http://127.0.0.1:3000', description: 'Local development' }])
})
