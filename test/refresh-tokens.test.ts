import { randomBytes } from 'node:crypto'
import t from 'tap'
import { refreshTokens } from '../src/auth/refresh-tokens.js'
import { uuidv7 } from '../src/ids.js'

t.test('a token names its session and counter, the same inputs give the same token', async t => {
  const codec = refreshTokens({ current: randomBytes(32), previous: [] })
  const id = uuidv7()
  const token = codec.issue(id, 41)
  t.match(token, /^[A-Za-z0-9_-]{71}$/)
  t.equal(codec.issue(id, 41), token, 'deterministic: racers and retries get the same successor')
  t.not(codec.issue(id, 42), token)
  t.same(codec.read(token), { sessionId: id, counter: 41 })
  t.same(codec.read(codec.issue(id, 2 ** 32 - 1)), { sessionId: id, counter: 2 ** 32 - 1 })
})

t.test('only tokens made with an accepted secret are read', async t => {
  const [a, b] = [randomBytes(32), randomBytes(32)]
  const id = uuidv7()
  const old = refreshTokens({ current: a, previous: [] }).issue(id, 3)
  t.same(refreshTokens({ current: b, previous: [a] }).read(old), { sessionId: id, counter: 3 }, 'a previous secret still reads')
  t.equal(refreshTokens({ current: b, previous: [] }).read(old), null, 'once retired, it does not')
  const codec = refreshTokens({ current: a, previous: [] })
  for (const bad of ['', 'x', old.slice(1), `${old}A`, old.replace(/^./, c => (c === 'A' ? 'B' : 'A')), `${old.slice(0, 70)}${old[70] === 'w' ? 'x' : 'w'}`, '!'.repeat(71)]) {
    t.equal(codec.read(bad), null, `refused: ${bad.slice(0, 12)}…`)
  }
})
