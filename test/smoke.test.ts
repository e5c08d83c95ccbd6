import t from 'tap'
import { build, register } from './helper.js'

t.test('smoke', async t => {
  const app = await build(t)
  const { tokens } = await register(app)
  const me = await app.inject({ url: '/me', headers: { authorization: `Bearer ${tokens.accessToken}` } })
  t.equal(me.statusCode, 200, me.body)
})
