// `npm run bench [-- --quick]`: loads the service and, in the same run, the baselines it is compared with.
// `npm run bench -- --scale` instead compares the service on a million users with itself on the small dataset (bench/scale.ts).
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import type autocannon from 'autocannon'
import postgres from 'postgres'
import { generateSigningKey } from '../src/auth/keys.js'
import { refreshTokens } from '../src/auth/refresh-tokens.js'
import {
  ADMIN, build, compare, compareMany, CONNECTIONS, createDatabase, currentPhase, DURATION, floorReady, freePort, launch, load, printTable, quick, ROUNDS,
  rssMb, settledRss, sleep, smtpSink, startService, step, waitFor, WARMUP, type Measured,
} from './harness.js'
import { drainRate, signUpDelay } from './mail.js'
import { loginRequest, meRequest, REFRESH_TOKENS_PER_SIDE, refreshRequest, registerAccounts } from './requests.js'
import { seedLiveSessions } from './seed.js'

/** The sign-up rate the mail delay is measured at. */
const SIGN_UPS_PER_SECOND = 100
const SIGN_UP_PHASE = `sign-ups at ${SIGN_UPS_PER_SECOND}/s`
/** `-- --mail`: only the outbox figures (and RSS idle and under the sign-ups), into results/mail-latest.json. */
const mailOnly = process.argv.includes('--mail')
const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGb: Math.round(totalmem() / 2 ** 30), node: process.version }

const outboxCounts = async (sql: postgres.Sql) => Object.fromEntries((await sql<{ status: string, n: number }[]>`select status, count(*)::int as n from outbox group by status`).map(r => [r.status, r.n]))

/** Prints the table, memory and mail, and writes them to results/<stamp>.json and results/<latest>. */
function report (latest: string, rows: Record<string, unknown>[], memory: object, mail: object) {
  step('done')
  printTable(rows, ['test', 'ours', 'baseline', 'ratio', 'target', 'cpuRatio', 'p99', 'non2xx', 'baselineName'],
    `machine: ${JSON.stringify(machine)}; ${DURATION} s per load, ${CONNECTIONS} connections (req/s; p99 in ms)`)
  console.log(`memory: ${JSON.stringify(memory)}`)
  console.log(`mail: ${JSON.stringify(mail)}`)
  mkdirSync(new URL('results/', import.meta.url), { recursive: true })
  const stamp = new Date().toISOString().replace(/[:.]/g, '-')
  const result = { date: new Date().toISOString(), quick, mailOnly, durationSeconds: DURATION, warmupSeconds: WARMUP, rounds: ROUNDS, connections: CONNECTIONS, machine, rows, memory, mail }
  writeFileSync(new URL(`results/${stamp}.json`, import.meta.url), `${JSON.stringify(result, null, 2)}\n`)
  writeFileSync(new URL(`results/${latest}`, import.meta.url), `${JSON.stringify(result, null, 2)}\n`)
}

/** The service's peak RSS in each phase (MB), sampled while it runs. */
const rssPhases: Record<string, number> = {}

async function argon2Ceiling (mode: 'verify' | 'hash') {
  const proc = launch([process.execPath, '--import', 'tsx', 'bench/argon2-ceiling.ts', String(quick ? 2 : DURATION), mode], { UV_THREADPOOL_SIZE: String(cpus().length) })
  await new Promise(resolve => proc.child.on('exit', resolve))
  return Math.round(JSON.parse(proc.output().trim().split('\n').pop()!).perSecond)
}

async function main () {
  const admin = postgres(ADMIN, { max: 1, onnotice: () => {} })
  const db = await createDatabase(admin, `auth_bench_${Date.now()}`)
  const dbUrl = db.url
  const key = generateSigningKey()
  const refreshSecret = randomBytes(32)
  const codec = refreshTokens({ current: refreshSecret, previous: [] })
  // the service's default pool, and the floors get the same
  const pool = String(2 * cpus().length)
  const smtp = await smtpSink()
  step('build')
  build()
  step('start service')
  const { api, proc: service } = await startService({ dbUrl, pool, key, refreshSecret, smtpUrl: smtp.url })
  // Idle, before any request but the readiness check. Right after start V8 still holds the young
  // generation that compiling the schemas grew (up to 32 MB); its memory reducer returns it after some
  // seconds without allocation. The full run waits for that (up to 30 s), the quick one does not.
  await sleep(quick ? 1000 : 2000)
  const rssAfterStart = rssMb(service.child.pid!)
  step('idle')
  const idle = quick ? { mb: rssAfterStart, seconds: 1 } : await settledRss(service.child.pid!, 30_000)
  let rssPeak = idle.mb
  const sampler = setInterval(() => {
    const now = rssMb(service.child.pid!)
    rssPeak = Math.max(rssPeak, now)
    rssPhases[currentPhase()] = Math.max(rssPhases[currentPhase()] ?? 0, now)
  }, 250)

  const sql = postgres(dbUrl, { max: 4, onnotice: () => {} })
  const rows: Record<string, unknown>[] = []

  // The outbox first, while nothing else is queued: a backlog drained to the relay, then the delay of a
  // sign-up's verification mail under a steady stream of sign-ups (the 100 a second for 30 s).
  step('mail drain')
  const drain = await drainRate(sql, smtp, quick ? 1000 : 5000, service.child.pid!)
  rows.push({ test: 'outbox drain to the relay', ours: drain.perSecond, baseline: null, ratio: null, target: '≥ 200/s', p99: null, non2xx: drain.missing + drain.sentTwice, baselineName: `${drain.messages} verification mails queued at once (msg/s; ${drain.cpuMsPerMessage} ms of CPU each)` })
  step(SIGN_UP_PHASE)
  const signUps = await signUpDelay(api, smtp, SIGN_UPS_PER_SECOND, quick ? 5 : 30)
  const d = signUps.delayMs
  rows.push({ test: `sign-up → relay, ${SIGN_UPS_PER_SECOND} sign-ups/s`, ours: signUps.signUpsPerSecond, baseline: null, ratio: null, target: 'p99 < 2000 ms', p99: d.p99, non2xx: signUps.non2xx + signUps.missing + signUps.sentTwice, baselineName: `the 201 to the relay's acceptance (p50 ${d.p50}, max ${d.max} ms)` })
  const rssSignUps = rssPhases[SIGN_UP_PHASE]
  if (mailOnly) {
    clearInterval(sampler)
    const outbox = await outboxCounts(sql)
    service.child.kill('SIGTERM')
    await sql.end()
    await smtp.close()
    await db.drop()
    await admin.end()
    const memory = { rssAfterStartMb: rssAfterStart, rssIdleMb: idle.mb, rssIdleAfterSeconds: idle.seconds, rssSignUpsMb: rssSignUps, rssPeakByPhaseMb: rssPhases, targets: { idle: '< 120', load: '< 250' } }
    report('mail-latest.json', rows, memory, { drain, signUps, outbox, relayReceived: smtp.received() })
    process.exit(0)
  }

  step('register accounts')
  const users = await registerAccounts(api, 40)
  step('seed tokens')
  const ourTokens = await seedLiveSessions(sql, codec, users[0]!.user.id, REFRESH_TOKENS_PER_SIDE)
  const floorTokens = await seedLiveSessions(sql, codec, users[1]!.user.id, REFRESH_TOKENS_PER_SIDE)
  // fresh planner statistics, and no autovacuum of the seeded tables starting during a measurement
  await sql`vacuum analyze`

  const meLoad = meRequest(users.map(u => u.accessToken))

  step('/me')
  // /me against its floor
  const floorMePort = freePort()
  const floorMe = launch([process.execPath, '--import', 'tsx', 'bench/floor-me.ts'], { PORT: String(floorMePort), DATABASE_URL: dbUrl, DATABASE_POOL_SIZE: pool, JWT_PUBLIC_KEY: key.publicPem })
  await floorReady(floorMe)
  // The full run also loads, in the same rounds, the floor plus the per-request features the service has
  // and the bare floor has not (logger with the same redaction, per-IP rate limit, CORS, security headers).
  const floorPlusPort = freePort()
  const floorPlus = quick ? undefined : launch([process.execPath, '--import', 'tsx', 'bench/floor-me.ts'], { PORT: String(floorPlusPort), DATABASE_URL: dbUrl, DATABASE_POOL_SIZE: pool, JWT_PUBLIC_KEY: key.publicPem, FLOOR_FEATURES: '1' })
  if (floorPlus) await floorReady(floorPlus)
  const [me, meFloor, meFloorPlus] = await compareMany({ url: api, request: meLoad, pid: service.child.pid! }, [
    { url: `http://127.0.0.1:${floorMePort}`, request: meLoad, pid: floorMe.child.pid! },
    ...(floorPlus ? [{ url: `http://127.0.0.1:${floorPlusPort}`, request: meLoad, pid: floorPlus.child.pid! }] : []),
  ]) as [Measured, Measured, Measured | undefined]
  floorMe.child.kill('SIGKILL')
  floorPlus?.child.kill('SIGKILL')
  rows.push({ test: 'GET /me', ours: me.rps, baseline: meFloor.rps, ratio: +(me.rps / meFloor.rps).toFixed(2), target: 0.85, p99: me.p99, non2xx: me.non2xx + me.errors, baselineName: 'bare Fastify + same verify + same query', rounds: { ours: me.rounds, baseline: meFloor.rounds }, cpuUsPerRequest: { ours: me.cpuRounds, baseline: meFloor.cpuRounds }, cpuRatio: +(meFloor.cpuUsPerRequest! / me.cpuUsPerRequest!).toFixed(2) })
  if (meFloorPlus) {
    rows.push({ test: 'GET /me vs floor + features', ours: me.rps, baseline: meFloorPlus.rps, ratio: +(me.rps / meFloorPlus.rps).toFixed(2), target: null, p99: me.p99, non2xx: me.non2xx + me.errors, baselineName: 'the floor + logger, rate limit, CORS, headers', rounds: { ours: me.rounds, baseline: meFloorPlus.rounds }, cpuUsPerRequest: { ours: me.cpuRounds, baseline: meFloorPlus.cpuRounds }, cpuRatio: +(meFloorPlus.cpuUsPerRequest! / me.cpuUsPerRequest!).toFixed(2) })
  }

  step('/refresh')
  // /refresh against the bare rotation transaction, each request a distinct live token
  const floorRefreshPort = freePort()
  const floorRefresh = launch([process.execPath, '--import', 'tsx', 'bench/floor-refresh.ts'], {
    PORT: String(floorRefreshPort), DATABASE_URL: dbUrl, DATABASE_POOL_SIZE: pool, JWT_PRIVATE_KEY: key.privatePem, REFRESH_TOKEN_SECRET: refreshSecret.toString('base64'),
  })
  await floorReady(floorRefresh)
  // both refuse a token whose MAC does not match
  const forged = `${ourTokens[0]!.slice(0, -2)}${ourTokens[0]!.endsWith('AA') ? 'BA' : 'AA'}`
  for (const url of [api, `http://127.0.0.1:${floorRefreshPort}`]) {
    const res = await fetch(`${url}/refresh`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refreshToken: forged }) })
    if (res.status !== 401) throw new Error(`${url}/refresh answered a forged token with ${res.status}`)
  }
  const { ours: refresh, baseline: refreshFloor } = await compare(
    { url: api, request: refreshRequest(ourTokens), pid: service.child.pid! },
    { url: `http://127.0.0.1:${floorRefreshPort}`, request: refreshRequest(floorTokens), pid: floorRefresh.child.pid! })
  floorRefresh.child.kill('SIGKILL')
  rows.push({ test: 'POST /refresh', ours: refresh.rps, baseline: refreshFloor.rps, ratio: +(refresh.rps / refreshFloor.rps).toFixed(2), target: 0.8, p99: refresh.p99, non2xx: refresh.non2xx + refresh.errors, baselineName: 'MAC + one UPDATE … RETURNING + sign', rounds: { ours: refresh.rounds, baseline: refreshFloor.rounds }, cpuUsPerRequest: { ours: refresh.cpuRounds, baseline: refreshFloor.cpuRounds }, cpuRatio: +(refreshFloor.cpuUsPerRequest! / refresh.cpuUsPerRequest!).toFixed(2) })

  step('/login')
  // /login against raw argon2id verification on every core, with /me latency probed during the storm
  const verifyCeiling = await argon2Ceiling('verify')
  const loginLoad = loginRequest(users.map(u => u.account))
  await load(api, loginLoad, { connections: 8 }, 1)
  const [login, probe] = await Promise.all([
    load(api, loginLoad, { connections: 8 }),
    load(api, meLoad, { connections: 1, overallRate: 50 }),
  ])
  rows.push({ test: 'POST /login', ours: login.rps, baseline: verifyCeiling, ratio: +(login.rps / verifyCeiling).toFixed(2), target: 0.9, p99: login.p99, non2xx: login.non2xx + login.errors, baselineName: 'argon2id verify, all cores' })
  rows.push({ test: 'GET /me during login storm', ours: probe.rps, baseline: null, ratio: null, target: 'p99 < 50 ms', p99: probe.p99, non2xx: probe.non2xx + probe.errors, baselineName: '50 req/s probe' })

  step('/register')
  // /register against raw argon2id hashing on every core
  const hashCeiling = await argon2Ceiling('hash')
  let r = 0
  const registerRequest: autocannon.Request = { method: 'POST', path: '/register', headers: { 'content-type': 'application/json' }, setupRequest: req => ({ ...req, body: JSON.stringify({ email: `load${r++}.${randomBytes(3).toString('hex')}@example.com`, password: 'a long bench passphrase for sign-up' }) }) }
  await load(api, registerRequest, { connections: 8 }, 1)
  const register = await load(api, registerRequest, { connections: 8 })
  rows.push({ test: 'POST /register', ours: register.rps, baseline: hashCeiling, ratio: +(register.rps / hashCeiling).toFixed(2), target: null, p99: register.p99, non2xx: register.non2xx + register.errors, baselineName: 'argon2id hash, all cores' })

  step('/password/forgot')
  // /password/forgot must not tell, by its time, whether an account has the address: unknown against known
  let k = 0
  const { ours: forgotUnknown, baseline: forgotKnown } = await compare(
    { url: api, request: { method: 'POST', path: '/password/forgot', headers: { 'content-type': 'application/json' }, setupRequest: req => ({ ...req, body: JSON.stringify({ email: `nobody${k++}.${randomBytes(3).toString('hex')}@example.com` }) }) } },
    { url: api, request: { method: 'POST', path: '/password/forgot', headers: { 'content-type': 'application/json' }, setupRequest: req => ({ ...req, body: JSON.stringify({ email: users[k++ % users.length]!.account.email }) }) } },
    1, quick ? 2 : DURATION)
  rows.push({ test: 'POST /password/forgot', ours: forgotUnknown.rps, baseline: forgotKnown.rps, ratio: +(forgotUnknown.rps / forgotKnown.rps).toFixed(2), target: '≈ 1', p99: `${forgotUnknown.p99} vs ${forgotKnown.p99}`, non2xx: forgotUnknown.non2xx + forgotUnknown.errors + forgotKnown.non2xx + forgotKnown.errors, baselineName: `unknown vs known address (p50 ${forgotUnknown.p50} vs ${forgotKnown.p50} ms)` })

  clearInterval(sampler)
  const rssLoad = Math.max(rssPeak, rssMb(service.child.pid!))
  // what the loads queued: sign-ups' verification mails and reset mails (skipped for unknown addresses)
  const mail = { drain, signUps, outbox: await outboxCounts(sql), relayReceived: smtp.received() }
  service.child.kill('SIGTERM')
  await sql.end()
  await smtp.close()

  step('npm start')
  // npm start on the embedded database: first start (create + migrate) and a restart
  const dataDir = mkdtempSync(join(tmpdir(), 'bench-data-'))
  const startTimes: number[] = []
  const npmStartRss: number[] = []
  let npmStartIdle: { mb: number, seconds: number } | undefined
  for (let i = 0; i < 2; i++) {
    const p = freePort()
    const started = Date.now()
    const proc = launch(['npm', 'start'], { PORT: String(p), DATA_DIR: dataDir, LOG_LEVEL: 'warn', DATABASE_URL: '' })
    await waitFor(`http://127.0.0.1:${p}/health`, 120_000)
    startTimes.push(Date.now() - started)
    // the node process serving the port (npm and the shell above it are not the service)
    const pid = Number(spawnSync('sh', ['-c', `ss -ltnpH 'sport = :${p}' | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2`]).stdout.toString().trim())
    if (pid) npmStartRss.push(rssMb(pid))
    // idle as the service's own idle figure is taken: once V8 has given back what starting grew (full run)
    if (pid && i === 1 && !quick) npmStartIdle = await settledRss(pid, 30_000)
    process.kill(-proc.child.pid!, 'SIGTERM')
    await new Promise(resolve => proc.child.on('exit', resolve))
  }

  await db.drop()
  await admin.end()

  const memory = { rssAfterStartMb: rssAfterStart, rssIdleMb: idle.mb, rssIdleAfterSeconds: idle.seconds, rssLoadMb: rssLoad, rssSignUpsMb: rssSignUps, rssPeakByPhaseMb: rssPhases, targets: { idle: '< 120', load: '< 250' }, npmStartFreshMs: startTimes[0], npmStartExistingMs: startTimes[1], npmStartRssMb: npmStartRss.at(-1), npmStartIdleRssMb: npmStartIdle?.mb }
  report('latest.json', rows, memory, mail)
  process.exit(0)
}

if (process.argv.includes('--scale')) {
  if (quick) throw new Error('--scale is a run of its own, not part of --quick')
  const { scaleRun } = await import('./scale.js')
  await scaleRun()
} else {
  await main()
}
