import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { createServerDatabase } from './helper.js'

// The real process, as `npm start` runs it (npm itself does not pass signals on, so it is left out).
const root = new URL('..', import.meta.url).pathname

async function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number }
      srv.close(() => resolve(port))
    }).on('error', reject)
  })
}

function start (env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout!.on('data', d => { output += d })
  child.stderr!.on('data', d => { output += d })
  const exited = new Promise<number | null>(resolve => child.on('exit', code => resolve(code)))
  return { child, exited, output: () => output }
}

async function waitForListening (proc: { output: () => string, exited: Promise<number | null> }, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (proc.output().includes('Server listening')) return
    const done = await Promise.race([proc.exited.then(() => true), new Promise(resolve => setTimeout(() => resolve(false), 100))])
    if (done) throw new Error(`server exited early:\n${proc.output()}`)
  }
  throw new Error(`server did not start:\n${proc.output()}`)
}

const kill = (child: ChildProcess) => { if (child.exitCode === null) child.kill('SIGKILL') }

t.test('starts with a generated development key, serves the README walkthrough, and stops on SIGTERM', async t => {
  const dataDir = mkdtempSync(join(tmpdir(), 'auth-data-'))
  const port = await freePort()
  const env: Record<string, string> = { PORT: String(port), DATA_DIR: dataDir, LOG_LEVEL: 'info' }
  if (process.env.TEST_DATABASE_URL) env.DATABASE_URL = await createServerDatabase(process.env.TEST_DATABASE_URL)
  const proc = start(env)
  t.teardown(() => kill(proc.child))
  await waitForListening(proc)
  t.match(proc.output(), /generated a development signing key/)
  t.notMatch(proc.output(), /BEGIN PRIVATE KEY/, 'the key itself is never logged')

  const { runReadmeWalkthrough } = await import('./readme.js')
  const transcript = await runReadmeWalkthrough(port)
  t.equal(transcript.code, 0, transcript.output)
  t.match(transcript.output, /"email": "ada@example.com"/, 'me answered')
  t.notMatch(proc.output(), /correct horse battery staple/, 'no password in the log')

  proc.child.kill('SIGTERM')
  t.equal(await proc.exited, 0, 'exits cleanly')
  t.match(proc.output(), /shutting down/)
})

t.test('production refuses to start without a signing key, naming the variable', async t => {
  const proc = start({ NODE_ENV: 'production', DATA_DIR: mkdtempSync(join(tmpdir(), 'auth-data-')), PORT: String(await freePort()), DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' })
  t.teardown(() => kill(proc.child))
  t.equal(await proc.exited, 1)
  t.match(proc.output(), /JWT_PRIVATE_KEY or JWT_PRIVATE_KEY_FILE must be set in production/)
  t.notMatch(proc.output(), /\n\s+at /, 'a message, not a stack trace')
})

t.test('a bad setting stops the start with a clear message', async t => {
  const proc = start({ PORT: 'eighty' })
  t.teardown(() => kill(proc.child))
  t.equal(await proc.exited, 1)
  t.match(proc.output(), /Invalid configuration: PORT must be integer/)
})
