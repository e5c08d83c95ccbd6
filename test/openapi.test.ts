import { readFileSync } from 'node:fs'
import t from 'tap'
import { generateOpenApi } from '../scripts/openapi-document.js'

t.test('openapi/openapi.json is what the route schemas generate (run `npm run openapi`)', async t => {
  const committed = readFileSync(new URL('../openapi/openapi.json', import.meta.url), 'utf8')
  const generated = await generateOpenApi()
  t.equal(committed, generated)
  const spec = JSON.parse(generated)
  t.equal(spec.openapi, '3.1.0')
  const operations = Object.values(spec.paths as Record<string, Record<string, { operationId?: string }>>).flatMap(p => Object.values(p))
  t.ok(operations.every(o => o.operationId), 'every operation has an id')
})
