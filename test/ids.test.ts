import t from 'tap'
import { validate, version } from 'uuid'
import { uuidv7 } from '../src/ids.js'

t.test('uuidv7 gives RFC 9562 version 7 ids that carry their millisecond and differ', async t => {
  const now = Date.UTC(2026, 10, 23, 12, 0, 0, 123)
  const ids = Array.from({ length: 1000 }, () => uuidv7(now))
  for (const id of ids.slice(0, 20)) {
    t.ok(validate(id), id)
    t.equal(version(id), 7)
    t.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'variant 10')
    t.equal(parseInt(id.replace(/-/g, '').slice(0, 12), 16), now, 'the first 48 bits are the time')
  }
  t.equal(new Set(ids).size, ids.length, 'no two alike within one millisecond')
  t.ok(uuidv7(now + 1) > uuidv7(now), 'a later millisecond sorts after')
  t.equal(parseInt(uuidv7().replace(/-/g, '').slice(0, 12), 16) <= Date.now(), true, 'the default is the current time')
})
