// `npm run bench -- --scale`: the same service build on the small dataset of the normal run and on a database
// holding a million users with a live session each, the /me, /refresh and /login loads of each in alternating
// rounds, and the large/small ratio of each.
import { randomBytes } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import postgres from 'postgres'
import { generateSigningKey } from '../src/auth/keys.js'
import { hashPassword } from '../src/auth/passwords.js'
import { refreshTokens } from '../src/auth/refresh-tokens.js'
import { accessTokenSigner, type SessionClaims } from './access-token.js'
import {
  ADMIN, build, compare, CONNECTIONS, cpuMicros, createDatabase, DURATION, printTable, ROUNDS, sleep, smtpSink, startService, step, WARMUP, type Measured, type Side,
} from './harness.js'
import { loginRequest, meRequest, REFRESH_TOKENS_PER_SIDE, refreshRequest, registerAccounts, type Account } from './requests.js'
import { populationEmail, seedLiveSessions, seedPopulation } from './seed.js'

const POPULATION = 1_000_000
/** How many of the million the /me and /login loads spread over, picked at random. */
const ME_SESSIONS = 20_000
const LOGIN_ACCOUNTS = 1_000
const PASSWORD = 'a long bench passphrase for the million'

/** Claims of `sessions`' live sessions and their users, as the service would sign them. */
const CLAIMS = `select s.user_id as sub, s.id as sid, u.role, u.email_verified_at is not null as email_verified, s.aal, s.amr
  from sessions s join users u on u.id = s.user_id`

function shuffle<T> (items: T[]) {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!]
  }
  return items
}

/**
 * What Postgres has done for one database so far: the CPU time of the service's connections, commits, blocks
 * found in shared_buffers and read from outside them, and updates of sessions rows (HOT: without new index entries).
 */
async function postgresCounters (sql: postgres.Sql) {
  const [db] = await sql<{ commits: number, hits: number, reads: number }[]>`
    select xact_commit::float8 as commits, blks_hit::float8 as hits, blks_read::float8 as reads from pg_stat_database where datname = current_database()`
  const [table] = await sql<{ updates: number, hot: number }[]>`
    select n_tup_upd::float8 as updates, n_tup_hot_upd::float8 as hot from pg_stat_user_tables where relname = 'sessions'`
  const backends = await sql<{ pid: number }[]>`select pid from pg_stat_activity where datname = current_database() and application_name = 'auth-api'`
  const cpu = new Map<number, number>()
  for (const { pid } of backends) {
    try { cpu.set(pid, cpuMicros(pid)) } catch {}
  }
  return { ...db!, ...table!, cpu }
}
type Counters = Awaited<ReturnType<typeof postgresCounters>>

/** Per commit between two readings; CPU over the connections present at both. */
function perCommit (before: Counters, after: Counters) {
  const commits = Math.max(1, after.commits - before.commits)
  let cpu = 0
  // a connection opened during the load (the pool opens them as needed) counts from its start
  for (const [pid, us] of after.cpu) cpu += us - (before.cpu.get(pid) ?? 0)
  const updates = after.updates - before.updates
  return {
    cpuUs: Math.round(cpu / commits),
    hits: +((after.hits - before.hits) / commits).toFixed(1),
    reads: +((after.reads - before.reads) / commits).toFixed(2),
    hotUpdates: updates > 0 ? +((after.hot - before.hot) / updates).toFixed(2) : null,
  }
}

export async function scaleRun () {
  const admin = postgres(ADMIN, { max: 1, onnotice: () => {} })
  const stamp = Date.now()
  const smallDb = await createDatabase(admin, `auth_bench_${stamp}_small`)
  const largeDb = await createDatabase(admin, `auth_bench_${stamp}_large`)
  try {
    await measure(smallDb.url, largeDb.url)
  } finally {
    // the million rows take most of a gigabyte: dropped however the run ends
    await smallDb.drop()
    await largeDb.drop()
    await admin.end()
  }
  process.exit(0)
}

async function measure (smallUrl: string, largeUrl: string) {
  const key = generateSigningKey()
  const refreshSecret = randomBytes(32)
  const codec = refreshTokens({ current: refreshSecret, previous: [] })
  const sign = accessTokenSigner(key)
  const pool = String(2 * cpus().length)
  const smtp = await smtpSink()
  step('build')
  build()
  step('start services')
  const small = await startService({ dbUrl: smallUrl, pool, key, refreshSecret, smtpUrl: smtp.url })
  const large = await startService({ dbUrl: largeUrl, pool, key, refreshSecret, smtpUrl: smtp.url })
  const smallSql = postgres(smallUrl, { max: 4, onnotice: () => {} })
  const largeSql = postgres(largeUrl, { max: 4, onnotice: () => {} })

  step('small dataset')
  // the normal run's: 40 accounts signed up through the API, live sessions of one of them for /refresh
  const users = await registerAccounts(small.api, 40)
  // presented in random order, as the large side's are, so only the size of the tables differs
  const smallRefresh = shuffle(await seedLiveSessions(smallSql, codec, users[0]!.user.id, REFRESH_TOKENS_PER_SIDE))
  step(`large dataset: ${POPULATION} users`)
  const passwordHash = await hashPassword(PASSWORD)
  const seeding = Date.now()
  await seedPopulation(largeSql, POPULATION, passwordHash, done => step(`large dataset: ${done} users`))
  const seedSeconds = Math.round((Date.now() - seeding) / 1000)
  step('vacuum analyze')
  await smallSql`vacuum analyze`
  await largeSql`vacuum analyze`
  const size = (await largeSql<{ users: string, sessions: string }[]>`
    select pg_size_pretty(pg_total_relation_size('users')) as users, pg_size_pretty(pg_total_relation_size('sessions')) as sessions`)[0]!

  step('pick requests')
  // each side's /me tokens are signed now, so none expires during the loads
  const sessionIds = users.map(u => codec.read(u.refreshToken)!.sessionId)
  const smallClaims = await smallSql.unsafe<SessionClaims[]>(`${CLAIMS} where s.id = any($1::uuid[])`, [sessionIds])
  const largeClaims = await largeSql.unsafe<SessionClaims[]>(`${CLAIMS} order by random() limit $1`, [ME_SESSIONS])
  const largeRefresh = (await largeSql<{ id: string }[]>`select id from sessions order by random() limit ${REFRESH_TOKENS_PER_SIDE}`).map(r => codec.issue(r.id, 0))
  const largeAccounts: Account[] = Array.from({ length: LOGIN_ACCOUNTS }, () => ({ email: populationEmail(1 + Math.floor(Math.random() * POPULATION)), password: PASSWORD }))

  const sides = (request: (dataset: 'small' | 'large') => Side['request'], options?: Side['options']): [Side, Side] => [
    { url: large.api, request: request('large'), pid: large.pid, ...(options ? { options } : {}) },
    { url: small.api, request: request('small'), pid: small.pid, ...(options ? { options } : {}) },
  ]
  const results: [string, { ours: Measured, baseline: Measured }, { large: ReturnType<typeof perCommit>, small: ReturnType<typeof perCommit> }][] = []
  // Postgres's share, read around each comparison: a backend reports its counters within 10 s of going idle
  const measured = async (test: string, ...pair: [Side, Side]) => {
    step(test)
    const before = { large: await postgresCounters(largeSql), small: await postgresCounters(smallSql) }
    const result = await compare(...pair)
    await sleep(11_000)
    results.push([test, result, { large: perCommit(before.large, await postgresCounters(largeSql)), small: perCommit(before.small, await postgresCounters(smallSql)) }])
  }
  await measured('GET /me', ...sides(d => meRequest((d === 'large' ? largeClaims : smallClaims).map(sign))))
  await measured('POST /refresh', ...sides(d => refreshRequest(d === 'large' ? largeRefresh : smallRefresh)))
  await measured('POST /login', ...sides(d => loginRequest(d === 'large' ? largeAccounts : users.map(u => u.account)), { connections: 8 }))
  await smallSql.end()
  await largeSql.end()

  const rows = results.map(([test, { ours: l, baseline: s }, pg]) => ({
    test,
    large: l.rps,
    small: s.rps,
    ratio: +(l.rps / s.rps).toFixed(2),
    target: 0.9,
    cpuUsPerRequest: `${l.cpuUsPerRequest} vs ${s.cpuUsPerRequest}`,
    p99: `${l.p99} vs ${s.p99}`,
    non2xx: l.non2xx + l.errors + s.non2xx + s.errors,
    rounds: { large: l.rounds, small: s.rounds },
    cpuRounds: { large: l.cpuRounds, small: s.cpuRounds },
    postgresPerCommit: pg,
    pgCpuUs: `${pg.large.cpuUs} vs ${pg.small.cpuUs}`,
    blocksReadHit: `${pg.large.reads}/${pg.large.hits} vs ${pg.small.reads}/${pg.small.hits}`,
    hotUpdates: pg.large.hotUpdates === null ? null : `${pg.large.hotUpdates} vs ${pg.small.hotUpdates}`,
  }))
  small.proc.child.kill('SIGTERM')
  large.proc.child.kill('SIGTERM')
  await smtp.close()

  const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGb: Math.round(totalmem() / 2 ** 30), node: process.version }
  const dataset = { population: POPULATION, seedSeconds, usersTable: size.users, sessionsTable: size.sessions, meSessions: ME_SESSIONS, loginAccounts: LOGIN_ACCOUNTS }
  step('done')
  printTable(rows, ['test', 'large', 'small', 'ratio', 'target', 'cpuUsPerRequest', 'p99', 'non2xx'],
    `machine: ${JSON.stringify(machine)}; ${DURATION} s per load, ${CONNECTIONS} connections (8 for /login); req/s, CPU µs per request and p99 ms, large vs small`)
  printTable(rows, ['test', 'pgCpuUs', 'blocksReadHit', 'hotUpdates'],
    'Postgres per commit, large vs small: CPU µs of the service\'s connections, blocks read from outside shared_buffers / found in them, share of sessions updates that were HOT')
  console.log(`large dataset: ${JSON.stringify(dataset)}`)
  mkdirSync(new URL('results/', import.meta.url), { recursive: true })
  const result = { date: new Date().toISOString(), scale: true, durationSeconds: DURATION, warmupSeconds: WARMUP, rounds: ROUNDS, connections: CONNECTIONS, machine, dataset, rows }
  const stamped = new Date().toISOString().replace(/[:.]/g, '-')
  writeFileSync(new URL(`results/${stamped}-scale.json`, import.meta.url), `${JSON.stringify(result, null, 2)}\n`)
  writeFileSync(new URL('results/scale-latest.json', import.meta.url), `${JSON.stringify(result, null, 2)}\n`)
}
