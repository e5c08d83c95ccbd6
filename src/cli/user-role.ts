import { loadConfig } from '../config.js'
import { openDatabase } from '../db/client.js'
import { ROLES, type Role } from '../db/schema.js'
import { setRoleByEmail } from '../repositories/users.js'

// `npm run user:role -- <email> <role>`: the one way to grant a role. No HTTP route can make anyone admin.
const [email, role] = process.argv.slice(2)
if (!email || !role || !(ROLES as readonly string[]).includes(role)) {
  console.error(`usage: npm run user:role -- <email> <${ROLES.join('|')}>`)
  process.exit(2)
}
const config = loadConfig(process.env)
const handle = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir, max: 1 })
try {
  await handle.migrate()
  const user = await setRoleByEmail(handle.db, email.trim().toLowerCase(), role as Role, new Date())
  if (!user) {
    console.error(`no account has the email ${email}`)
    process.exitCode = 1
  } else {
    // an audit line, like the server's: who changed, to what; from the command line
    console.log(JSON.stringify({ audit: 'role_changed', userId: user.id, role: user.role, by: 'command line', msg: 'audit role_changed' }))
  }
} finally {
  await handle.close()
}
