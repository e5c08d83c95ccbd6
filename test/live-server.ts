import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from './helper.js'
import { createServerDatabase } from './helper.js'

// The real process, as `npm start` runs it (npm itself does not pass signals on, so it is left out).
const root = new URL('..', import.meta.url).pathname

export async function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number }
      srv.close(() => resolve(port))
    }).on('error', reject)
  })
}

/** The server as `npm start` runs it (or with other node arguments). */
export function start (env: Record<string, string>, args = ['--require', './src/threadpool.cjs', '--import', 'tsx', 'src/server.ts']) {
  const child = spawn(process.execPath, args, {
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

export async function waitForListening (proc: { output: () => string, exited: Promise<number | null> }, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (proc.output().includes('Server listening')) return
    const done = await Promise.race([proc.exited.then(() => true), new Promise(resolve => setTimeout(() => resolve(false), 100))])
    if (done) throw new Error(`server exited early:\n${proc.output()}`)
  }
  throw new Error(`server did not start:\n${proc.output()}`)
}

export const kill = (child: ChildProcess) => { if (child.exitCode === null) child.kill('SIGKILL') }

/** A server process on a free port (or env.PORT, one chosen before), on its own fresh database; stopped when the test ends. */
export async function liveServer (t: Test, env: Record<string, string> = {}, args?: string[]) {
  const port = env.PORT ? Number(env.PORT) : await freePort()
  const dataDir = mkdtempSync(join(tmpdir(), 'auth-data-'))
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }))
  const base: Record<string, string> = { PORT: String(port), DATA_DIR: dataDir, LOG_LEVEL: 'info' }
  if (process.env.TEST_DATABASE_URL && !env.DATABASE_URL) base.DATABASE_URL = await createServerDatabase(process.env.TEST_DATABASE_URL)
  const proc = start({ ...base, ...env }, args)
  t.teardown(() => kill(proc.child))
  await waitForListening(proc)
  return { ...proc, port, url: `http://127.0.0.1:${port}` }
}
