import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { openDatabase } from '../../src/db/client.js'
import { assertProblem, bearer, build, claims, createServerDatabase, newAccount, register, type TestApp, type TokenBody } from '../helper.js'

const root = new URL('../..', import.meta.url).pathname
const get = (app: TestApp, url: string, token: string) => app.inject({ url, headers: bearer(token) })
const refresh = async (app: TestApp, refreshToken: string) => (await app.inject({ method: 'POST', url: '/refresh', payload: { refreshToken } })).json() as TokenBody

t.test('npm run user:role grants a role from the command line, and nothing over HTTP can', async t => {
  let url: string | undefined
  let dataDir: string | undefined
  if (process.env.TEST_DATABASE_URL) {
    url = await createServerDatabase(process.env.TEST_DATABASE_URL)
  } else {
    dataDir = mkdtempSync(join(tmpdir(), 'auth-role-'))
    t.teardown(() => rmSync(dataDir!, { recursive: true, force: true }))
  }
  const open = async () => {
    const handle = await openDatabase({ url, dataDir })
    await handle.migrate()
    return handle
  }
  const cli = (...args: string[]) => spawnSync('npm', ['run', '-s', 'user:role', '--', ...args], {
    cwd: root, encoding: 'utf8', env: { ...process.env, NODE_ENV: 'development', DATABASE_URL: url ?? '', DATA_DIR: dataDir ?? '' },
  })

  // the embedded database is one process's at a time: the app is closed while the command runs
  let handle = await open()
  const app = await build(t, { database: handle })
  const account = newAccount()
  const { tokens } = await register(app, account)
  assertProblem(t, await app.inject({ method: 'PATCH', url: '/me', headers: bearer(tokens.accessToken), payload: { role: 'admin' } }), 400, 'validation_failed')
  await app.close()
  await handle.close()

  const granted = cli(`  ${account.email.toUpperCase()} `, 'admin')
  t.equal(granted.status, 0, granted.stderr)
  t.match(granted.stdout, new RegExp(`"audit":"role_changed","userId":"${tokens.user.id}","role":"admin"`))
  const unknown = cli('nobody@example.com', 'admin')
  t.equal(unknown.status, 1)
  t.match(unknown.stderr, /no account has the email nobody@example\.com/)
  const usage = cli(account.email, 'root')
  t.equal(usage.status, 2)
  t.match(usage.stderr, /usage: npm run user:role -- <email> <user\|admin>/)

  handle = await open()
  t.teardown(() => handle.close())
  const again = await build(t, { database: handle })
  const next = await refresh(again, tokens.refreshToken)
  t.equal(claims(next.accessToken).role, 'admin')
  t.equal((await get(again, '/admin/users', next.accessToken)).statusCode, 200)
})
