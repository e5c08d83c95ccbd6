import { createHash } from 'node:crypto'
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { openDatabase, type DatabaseHandle } from '../src/db/client.js'

// PGlite spends seconds in initdb on every start: the files start from a copy of one migrated data
// directory instead, made once per set of migrations (and PGlite version).
const migrations = fileURLToPath(new URL('../drizzle/', import.meta.url))
const pgliteVersion = (JSON.parse(readFileSync(new URL('../node_modules/@electric-sql/pglite/package.json', import.meta.url), 'utf8')) as { version: string }).version

async function pgliteTemplate (): Promise<string> {
  const hash = createHash('sha256').update(pgliteVersion)
  for (const file of (readdirSync(migrations, { recursive: true }) as string[]).sort()) {
    if (statSync(join(migrations, file)).isFile()) hash.update(file).update(readFileSync(join(migrations, file)))
  }
  const template = join(tmpdir(), `auth-test-pglite-${hash.digest('hex').slice(0, 16)}`)
  if (existsSync(template)) return template
  const work = mkdtempSync(join(tmpdir(), 'auth-test-pglite-'))
  try {
    const handle = await openDatabase({ dataDir: work })
    await handle.migrate()
    await handle.close()
    // atomic: a file running at the same time either sees the whole template or none
    renameSync(join(work, 'pglite'), template)
  } catch (err) {
    if (!existsSync(template)) throw err
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
  return template
}

// where there is one, a memory file system: PGlite's writes then cost no disk I/O
const scratch = existsSync('/dev/shm') ? '/dev/shm' : tmpdir()

/** An embedded database of its own in a data directory, as `npm start` keeps it, removed when the file ends. */
export async function pgliteDatabase (): Promise<DatabaseHandle> {
  const dir = mkdtempSync(join(scratch, 'auth-test-db-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  cpSync(await pgliteTemplate(), join(dir, 'pglite'), { recursive: true })
  return openDatabase({ dataDir: dir })
}
