// What every bench mode shares: child processes, their RSS and CPU time, loads, and alternating comparisons.
import { randomBytes } from 'node:crypto'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import autocannon from 'autocannon'
import type postgres from 'postgres'
import { SMTPServer } from 'smtp-server'
import type { SigningKey } from '../src/auth/keys.js'

export const quick = process.argv.includes('--quick')
// Each comparison warms both sides up, then alternates measured rounds: a slow moment of this shared
// machine then falls on both, and the medians are compared. One second of warm-up was not enough: the
// service, with far more code to optimise than a floor, kept speeding up for several seconds.
export const WARMUP = quick ? 1.5 : 5
export const DURATION = quick ? 3 : 4
export const ROUNDS = quick ? 1 : 5
export const CONNECTIONS = 16
export const ADMIN = process.env.PG_ADMIN_URL ?? process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
export const root = new URL('..', import.meta.url).pathname
const children: ChildProcess[] = []
process.on('exit', () => { for (const c of children) if (c.exitCode === null) c.kill('SIGKILL') })

const began = Date.now()
let phase = 'start'
/** The phase the last progress line named, for the RSS sampler. */
export const currentPhase = () => phase
/** Progress on stderr, so a slow phase shows where the time goes. */
export const step = (what: string) => {
  phase = what
  console.error(`[${((Date.now() - began) / 1000).toFixed(1)} s] ${what}`)
}
export const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))
// below the ephemeral range (32768-60999 here), where the loads' own client sockets could already hold a port
let nextPort = 20_000 + Math.floor(Math.random() * 10_000)
export const freePort = () => nextPort++

export function launch (args: string[], env: Record<string, string>, cwd = root) {
  const child = spawn(args[0]!, args.slice(1), { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  children.push(child)
  let out = ''
  child.stdout!.on('data', d => { out += d })
  child.stderr!.on('data', d => { out += d })
  return { child, output: () => out }
}
export type Launched = ReturnType<typeof launch>

export async function waitFor (url: string, timeoutMs = 60_000) {
  const start = Date.now()
  while (Date.now() - start < timeoutMs) {
    try {
      if ((await fetch(url)).ok) return Date.now() - start
    } catch {}
    await sleep(25)
  }
  throw new Error(`${url} did not answer`)
}

/** The floors print 'floor ready' once they listen. */
export async function floorReady (proc: Launched) {
  for (let i = 0; i < 400; i++) {
    if (proc.output().includes('floor ready')) return
    if (proc.child.exitCode !== null) break
    await sleep(25)
  }
  throw new Error(`a floor server did not start:\n${proc.output()}`)
}

export function rssMb (pid: number) {
  const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0)
  return Math.round(kb / 1024)
}

/** CPU time (user + system, all threads) a process has used, in microseconds. */
export function cpuMicros (pid: number) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 1_000_000 / CLOCK_TICKS
}
const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK']).stdout.toString().trim()) || 100

/** RSS once it stops falling: sampled until it has dropped and then held for 3 s, or for `maxMs`; the lowest seen. */
export async function settledRss (pid: number, maxMs: number) {
  const start = Date.now()
  const first = rssMb(pid)
  let low = first
  let lowSince = Date.now()
  while (Date.now() - start < maxMs) {
    await sleep(500)
    const now = rssMb(pid)
    if (now < low - 1) { low = now; lowSince = Date.now() }
    if (low < first - 10 && Date.now() - lowSince >= 3000) break
  }
  return { mb: low, seconds: Math.round((lowSince - start) / 1000) + 2 }
}

export interface Load { rps: number, p50: number, p99: number, non2xx: number, errors: number, cpuUsPerRequest?: number }
/** `pid`: the server's process, whose CPU time per request is reported too (steadier than req/s on a shared machine). */
export async function load (url: string, request: autocannon.Request, options: Partial<autocannon.Options> = {}, duration = DURATION, pid?: number): Promise<Load> {
  const cpuBefore = pid ? cpuMicros(pid) : 0
  const result = await autocannon({ url, connections: CONNECTIONS, duration, requests: [request], ...options })
  const cpu = pid ? { cpuUsPerRequest: Math.round((cpuMicros(pid) - cpuBefore) / Math.max(1, result.requests.total)) } : {}
  return { rps: Math.round(result.requests.average), p50: result.latency.p50, p99: result.latency.p99, non2xx: result.non2xx, errors: result.errors, ...cpu }
}

/** The round with the median rate; its non-2xx count is that of all rounds. */
function median (rounds: Load[]): Load & { rounds: number[], cpuRounds: number[] } {
  const sorted = [...rounds].sort((a, b) => a.rps - b.rps)
  const mid = sorted[Math.floor(sorted.length / 2)]!
  const cpu = rounds.map(r => r.cpuUsPerRequest ?? 0).sort((a, b) => a - b)
  return {
    ...mid,
    cpuUsPerRequest: cpu[Math.floor(cpu.length / 2)],
    non2xx: rounds.reduce((n, r) => n + r.non2xx, 0),
    errors: rounds.reduce((n, r) => n + r.errors, 0),
    rounds: rounds.map(r => r.rps),
    cpuRounds: rounds.map(r => r.cpuUsPerRequest ?? 0),
  }
}
export type Measured = ReturnType<typeof median>

export type Side = { url: string, request: autocannon.Request, options?: Partial<autocannon.Options>, pid?: number }
/** Ours against its baseline: both warmed up, then ROUNDS alternating measured loads each. */
export async function compare (ours: Side, baseline: Side, warmup = WARMUP, duration = DURATION) {
  const [oursResult, baselineResult] = await compareMany(ours, [baseline], warmup, duration)
  return { ours: oursResult!, baseline: baselineResult! }
}

/** Ours and several baselines in the same rounds (ours, then each baseline), so drift hits every side alike. */
export async function compareMany (ours: Side, baselines: Side[], warmup = WARMUP, duration = DURATION) {
  const sides = [ours, ...baselines]
  for (const side of sides) await load(side.url, side.request, side.options, warmup)
  const results: Load[][] = sides.map(() => [])
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, side] of sides.entries()) results[i]!.push(await load(side.url, side.request, side.options, duration, side.pid))
  }
  return results.map(median)
}

/**
 * A mail relay that accepts every message, as a production relay would accept them, and keeps a count
 * and when it accepted a message for each recipient.
 */
export async function smtpSink () {
  let received = 0
  const accepted = new Map<string, number[]>()
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData (stream, session, callback) {
      stream.resume()
      stream.on('end', () => {
        received++
        const now = Date.now()
        for (const { address } of session.envelope.rcptTo) {
          const times = accepted.get(address)
          if (times) times.push(now)
          else accepted.set(address, [now])
        }
        callback()
      })
    },
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', () => resolve()))
  const { port } = server.server.address() as { port: number }
  return { url: `smtp://127.0.0.1:${port}`, received: () => received, acceptedAt: (to: string) => accepted.get(to) ?? [], close: () => new Promise<void>(resolve => server.close(() => resolve())) }
}

export function printTable (rows: Record<string, unknown>[], cols: string[], heading: string) {
  const cell = (v: unknown) => (v === null || v === undefined ? '' : String(v))
  const width = cols.map(c => Math.max(c.length, ...rows.map(r => cell(r[c]).length)))
  const line = (values: string[]) => values.map((v, i) => v.padEnd(width[i]!)).join(' | ')
  console.log(`\n${heading}`)
  console.log(line(cols))
  console.log(width.map(w => '-'.repeat(w)).join('-|-'))
  for (const r of rows) console.log(line(cols.map(c => cell(r[c]))))
}

/** A fresh database on the machine's Postgres, and how to drop it. */
export async function createDatabase (admin: postgres.Sql, name: string) {
  await admin.unsafe(`create database ${name}`)
  return {
    url: Object.assign(new URL(ADMIN), { pathname: `/${name}` }).toString(),
    drop: () => admin.unsafe(`drop database if exists ${name} with (force)`),
  }
}

/** The compiled output, as the image runs it (npm start adds tsx's loader, measured separately). */
export function build () {
  if (spawnSync('npm', ['run', '-s', 'build'], { cwd: root, stdio: 'inherit' }).status !== 0) throw new Error('build failed')
}

export interface ServiceOptions { dbUrl: string, pool: string, key: SigningKey, refreshSecret: Buffer, smtpUrl: string }
/**
 * The service as the image runs it, in production mode, with rate limits raised out of the loads' way and
 * the scheduled prune off; resolves once it is ready.
 */
export async function startService (o: ServiceOptions) {
  const port = freePort()
  const high = '1000000'
  const proc = launch([process.execPath, '--require', './dist/threadpool.cjs', 'dist/server.js'], {
    PORT: String(port),
    DATABASE_URL: o.dbUrl,
    DATABASE_POOL_SIZE: o.pool,
    JWT_PRIVATE_KEY: o.key.privatePem,
    REFRESH_TOKEN_SECRET: o.refreshSecret.toString('base64'),
    // required in production; the loads enrol no second factor
    MFA_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    NODE_ENV: 'production',
    SMTP_URL: o.smtpUrl,
    APP_URL: 'https://app.example.com',
    LOG_LEVEL: 'warn',
    RATE_LIMIT_LOGIN_IP: high,
    RATE_LIMIT_REGISTER_IP: high,
    RATE_LIMIT_REFRESH_IP: high,
    RATE_LIMIT_IP: high,
    RATE_LIMIT_LOGIN_ACCOUNT: high,
    RATE_LIMIT_FORGOT: high,
    RATE_LIMIT_FORGOT_IP: high,
    PRUNE_INTERVAL_SECONDS: '0',
  })
  const api = `http://127.0.0.1:${port}`
  await waitFor(`${api}/ready`).catch((err: unknown) => { console.error(proc.output()); throw err instanceof Error ? err : new Error(String(err)) })
  return { api, pid: proc.child.pid!, proc }
}
