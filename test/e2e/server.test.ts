import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { totpAt } from '../totp.js'
import { freePort, kill, liveServer, start } from '../live-server.js'
import { runReadmeBlock } from '../readme.js'

t.test('starts with a generated development key, serves the README walkthrough, and stops on SIGTERM', async t => {
  const proc = await liveServer(t)
  const { port } = proc
  t.match(proc.output(), /generated a development signing key/)
  t.match(proc.output(), /generated a development refresh token secret/)
  t.match(proc.output(), /generated a development MFA encryption key/)
  t.match(proc.output(), /^\{"level":/m, 'not a terminal: JSON lines')
  t.notMatch(proc.output(), /-----BEGIN [A-Z ]*KEY-----/, 'the key itself is never logged')
  t.notMatch(proc.output(), /UV_THREADPOOL_SIZE is not set/, 'started as npm start does, the pool is sized')

  const transcript = await runReadmeBlock('walkthrough', port)
  t.equal(transcript.code, 0, transcript.output)
  t.match(transcript.output, /"email": "ada@example.com"/, 'me answered')
  t.notMatch(proc.output(), /correct horse battery staple/, 'no password in the log')

  proc.child.kill('SIGTERM')
  t.equal(await proc.exited, 0, 'exits cleanly')
  t.match(proc.output(), /shutting down/)
})

t.test('the README\'s two-factor block runs as written, with the codes a reader would type', async t => {
  const server = await liveServer(t)
  let confirmedAt = 0
  const recoveryCodeLists = (output: string) => [...output.matchAll(/\[("[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}",?){10}\]/g)].map(m => JSON.parse(m[0]) as string[])
  const run = await runReadmeBlock('mfa', server.port, true, (prompt, output) => {
    const secret = /secret: ([A-Z2-7]+)/.exec(output)![1]!
    switch (prompt) {
      case 0: confirmedAt = Date.now(); return totpAt(secret, confirmedAt)
      // the confirmation's step is spent: the app's next code
      case 1: return totpAt(secret, confirmedAt + 30_000)
      // the first recovery code signed in at step 6; the new list's first turns the app off
      case 2: return recoveryCodeLists(output)[0]![1]!
      default: return recoveryCodeLists(output)[1]![0]!
    }
  })
  t.equal(run.code, 0, run.output)
  t.match(run.output, /"code": "mfa_required"/)
  t.match(run.output, /"totp": true,\s+"recoveryCodesLeft": 10/, 'signed in with a code')
  t.match(run.output, /"email": "alan@example.com"/, 'signed in with a recovery code')
  t.equal(recoveryCodeLists(run.output).length, 2, 'the codes, then new ones')
  t.match(run.output, /\n204\n/, 'turned off')
  const login = await fetch(`${server.url}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'alan@example.com', password: 'a long passphrase for alan' }) })
  t.equal(login.status, 200, 'the password alone signs in again')
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

t.test('the threadpool preload gives libuv one thread per core, and the server warns without it', async t => {
  // libuv starts every pool thread at the pool's first use: the thread count before and after one
  // asynchronous file call is the pool's size (a CommonJS script, so nothing used the pool before)
  const script = `const { readdirSync, promises } = require('node:fs')
    const before = readdirSync('/proc/self/task').length
    promises.stat('.').then(() => console.log(readdirSync('/proc/self/task').length - before))`
  const poolSize = (args: string[]) => {
    // through env -i: the test runner adds its own preloads to the environment of node children
    const run = spawnSync('env', ['-i', process.execPath, ...args, '-e', script], { cwd: new URL('../..', import.meta.url).pathname })
    t.equal(run.status, 0, run.stderr.toString())
    return Number(run.stdout.toString().trim())
  }
  t.equal(poolSize(['--require', './src/threadpool.cjs']), availableParallelism(), 'one thread per core')
  t.equal(poolSize([]), 4, 'libuv\'s default without it')

  const bare = await liveServer(t, {}, ['--import', 'tsx', 'src/server.ts'])
  t.match(bare.output(), /UV_THREADPOOL_SIZE is not set/, 'started without the preload, it says so')
})

t.test('in a terminal, development logs are readable lines, not JSON', async t => {
  const port = await freePort()
  const dataDir = mkdtempSync(join(tmpdir(), 'auth-data-'))
  // `script` lends the server a pty, as a developer's terminal would; the shell says its pid, which exec hands to node
  const command = `echo "pid=$$"; exec env PORT=${port} DATA_DIR=${dataDir} ${process.execPath} --require ./src/threadpool.cjs --import tsx src/server.ts`
  const tty = spawn('script', ['-qefc', command, '/dev/null'], {
    cwd: new URL('../..', import.meta.url).pathname, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' }, stdio: ['ignore', 'pipe', 'pipe'],
  })
  // the server runs in the pty's own session, out of reach of a signal to `script`: end it by its pid first
  t.teardown(() => {
    const pid = Number(/pid=(\d+)/.exec(output)?.[1])
    if (pid) try { process.kill(pid, 'SIGKILL') } catch {}
    kill(tty)
  })
  let output = ''
  tty.stdout.on('data', d => { output += d })
  for (let i = 0; i < 600 && !/Server listening/.test(output); i++) await new Promise(resolve => setTimeout(resolve, 100))
  t.match(output, /INFO.*Server listening/, 'pretty-printed: level names and messages')
  t.notMatch(output, /\{"level":/, 'no JSON lines')
})
