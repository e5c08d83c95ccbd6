import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core'
import { sql } from 'drizzle-orm'
import type { Sql } from 'postgres'
import * as schema from './schema.js'

export type Schema = typeof schema
export type Database = PgDatabase<PgQueryResultHKT, Schema>
/** A transaction or the database itself: repositories accept either. */
export type Executor = Pick<Database, 'select' | 'insert' | 'update' | 'delete' | 'execute'>

export interface DatabaseHandle {
  db: Database
  kind: 'pglite' | 'postgres'
  migrate(): Promise<void>
  close(): Promise<void>
}

export const migrationsFolder = fileURLToPath(new URL('../../drizzle', import.meta.url))
// Any fixed 64-bit number shared by every instance: serialises migrations run by several starting copies.
const MIGRATION_LOCK_ID = 7_262_001_311

export interface OpenOptions {
  /** postgres:// URL; when absent an embedded PGlite database is used. */
  url?: string | undefined
  /** PGlite data directory; in memory when absent. */
  dataDir?: string | undefined
  /** postgres.js pool size */
  max?: number
}

export async function openDatabase (options: OpenOptions): Promise<DatabaseHandle> {
  return options.url ? openPostgres(options.url, options.max ?? 10) : openPglite(options.dataDir)
}

async function openPostgres (url: string, max: number): Promise<DatabaseHandle> {
  const { default: postgres } = await import('postgres')
  const { drizzle } = await import('drizzle-orm/postgres-js')
  const { migrate } = await import('drizzle-orm/postgres-js/migrator')
  const common = {
    onnotice: () => {},
    connect_timeout: 5,
    // a query never waits longer than this on a stuck server or lock
    connection: { statement_timeout: 10_000, application_name: 'auth-api' },
  }
  const client = postgres(url, { ...common, max, idle_timeout: 60 })
  const db = drizzle(alwaysPrepared(client), { schema }) as unknown as Database
  return {
    db,
    kind: 'postgres',
    async migrate () {
      // One connection, so the session-level advisory lock covers the whole migration.
      const one = postgres(url, { ...common, max: 1 })
      try {
        await one`select pg_advisory_lock(${MIGRATION_LOCK_ID})`
        await migrate(drizzle(one), { migrationsFolder })
      } finally {
        await one.end({ timeout: 5 })
      }
    },
    async close () {
      await client.end({ timeout: 5 })
    },
  }
}

/**
 * drizzle's postgres.js driver sends every query not built with `.prepare(name)` unprepared, so Postgres
 * parses and plans it on every call; inside transactions `.prepare` is not available at all. The app sends
 * a small fixed set of query shapes, and postgres.js keeps prepared statements per connection by their
 * text, so asking for preparation everywhere (transactions included) plans each shape once per connection.
 * (Behind PgBouncer, use session pooling.)
 */
function alwaysPrepared (sql: Sql): Sql {
  return new Proxy(sql, {
    get (target, prop) {
      if (prop === 'unsafe') {
        return (query: string, params?: unknown[], options?: Record<string, unknown>) =>
          target.unsafe(query, params as never, { ...options, prepare: true })
      }
      if (prop === 'begin') {
        return (...args: unknown[]) => {
          const callback = args.pop() as (tx: Sql) => unknown
          return (target.begin as (...a: unknown[]) => unknown)(...args, (tx: Sql) => callback(alwaysPrepared(tx)))
        }
      }
      const value = Reflect.get(target, prop) as unknown
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
}

async function openPglite (dataDir: string | undefined): Promise<DatabaseHandle> {
  const { PGlite } = await import('@electric-sql/pglite')
  const { drizzle } = await import('drizzle-orm/pglite')
  const { migrate } = await import('drizzle-orm/pglite/migrator')
  let client
  if (dataDir) {
    const dir = join(dataDir, 'pglite')
    mkdirSync(dir, { recursive: true })
    client = await PGlite.create(dir)
  } else {
    client = await PGlite.create()
  }
  const db = drizzle(client, { schema }) as unknown as Database
  return {
    db,
    kind: 'pglite',
    async migrate () {
      await migrate(drizzle(client), { migrationsFolder })
    },
    async close () {
      await client.close()
    },
  }
}

/** A time selected as `extract(epoch from ...)::float8 * 1000`, the same from either driver, as a Date. */
export const fromEpochMs = (ms: number | null) => (ms === null ? null : new Date(Number(ms)))

/**
 * A fixed statement (`$1`, `$2` ... parameters) sent straight to the driver under drizzle, prepared once
 * per connection: the style of the session statements, which run on every request's path (the query
 * builder and its row mapping showed in the profile). Runs on the database or inside a transaction.
 * Rows come back as the driver parses them: select numbers, text, booleans and arrays (not timestamps,
 * which the two drivers return differently).
 */
export function statement<T> (text: string): (ex: Executor, params: unknown[]) => Promise<T[]> {
  type Client = Sql | { query: (text: string, params: unknown[]) => Promise<{ rows: T[] }> }
  const runners = new WeakMap<Executor, (params: unknown[]) => Promise<T[]>>()
  const runnerFor = (ex: Executor) => {
    // a database and a transaction both hold their driver client in `session.client`
    const client = (ex as unknown as { session: { client: Client } }).session.client
    if ('unsafe' in client) return (params: unknown[]) => client.unsafe(text, params as never[], { prepare: true }) as unknown as Promise<T[]>
    return async (params: unknown[]) => (await client.query(text, params)).rows
  }
  return (ex, params) => {
    let run = runners.get(ex)
    if (!run) runners.set(ex, run = runnerFor(ex))
    return run(params)
  }
}

export async function ping (db: Database): Promise<void> {
  await db.execute(sql`select 1`)
}

/** The constraint a Postgres unique violation broke, whichever driver raised it (and however wrapped); undefined for any other error. */
export function uniqueViolation (err: unknown): string | undefined {
  for (let e = err as { code?: unknown, constraint?: unknown, constraint_name?: unknown, cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e.code === '23505') return String(e.constraint_name ?? e.constraint ?? '')
  }
  return undefined
}

/** A page cut from `limit + 1` rows read in order: the next cursor is the last kept row's id when there are more. */
export function pageOf<T extends { id: string }> (rows: T[], limit: number): { items: T[], nextCursor: string | null } {
  const more = rows.length > limit
  const items = more ? rows.slice(0, limit) : rows
  return { items, nextCursor: more ? items.at(-1)!.id : null }
}
