import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { generateSigningKey, resolveMfaKey, resolveRefreshSecrets, resolveSigningKey } from '../src/auth/keys.js'
import { assertServable, ConfigError, loadConfig } from '../src/config.js'
import { build } from './helper.js'

t.test('defaults', async t => {
  const c = loadConfig({})
  t.equal(c.env, 'development')
  t.equal(c.port, 3000)
  t.equal(c.host, '127.0.0.1')
  t.equal(c.databaseUrl, undefined)
  t.equal(c.dataDir, './data')
  t.equal(c.databasePoolSize, 2 * availableParallelism(), 'twice the cores')
  t.same(c.jwt, { privateKeyPem: undefined, privateKeyFile: undefined, issuer: 'auth-api', audience: 'auth-api', accessTokenTtl: 900 })
  t.same(c.refresh, { ttl: 43_200, rememberTtl: 2_592_000, absoluteTtl: 2_592_000, reuseGraceSeconds: 10, secret: undefined, previousSecrets: [] })
  t.equal(c.passwordMinLength, 15)
  t.same(c.rateLimit, { loginIp: 20, registerIp: 20, refreshIp: 60, ip: 300, loginAccount: 10, forgot: 3, forgotIp: 20 })
  t.same(c.mail, {
    appUrl: 'http://localhost:3000', appUrlSet: false, smtpUrl: undefined, from: 'Auth API <no-reply@localhost>', subjects: { reset: 'Reset your password', verify: 'Verify your email address' }, resetTtl: 1800, verifyTtl: 86_400, emailChangeTtl: 3600, requireVerification: false,
  })
  t.equal(c.trustProxy, false)
  t.equal(c.cookieSecure, true)
  t.same(c.corsOrigins, [])
  t.equal(c.docsEnabled, true)
  t.same(c.mfa, { issuer: 'Auth API', encryptionKey: undefined })
  t.equal(c.auditRetentionDays, 90)
  t.same(c.webhooks, { url: undefined, secret: undefined, events: ['user.created', 'user.updated', 'user.deleted', 'user.suspended', 'session.created', 'session.revoked'] }, 'no webhooks; every event once a URL is set')
})

t.test('EMAIL_CHANGE_TOKEN_TTL and AUDIT_RETENTION_DAYS are read and bounded', async t => {
  t.equal(loadConfig({ EMAIL_CHANGE_TOKEN_TTL: '600' }).mail.emailChangeTtl, 600)
  t.equal(loadConfig({ AUDIT_RETENTION_DAYS: '365' }).auditRetentionDays, 365)
  t.throws(() => loadConfig({ EMAIL_CHANGE_TOKEN_TTL: '30' }), { name: 'ConfigError', message: /EMAIL_CHANGE_TOKEN_TTL must be >= 60/ })
  t.throws(() => loadConfig({ AUDIT_RETENTION_DAYS: '0' }), { name: 'ConfigError', message: /AUDIT_RETENTION_DAYS must be >= 1/ })
})

t.test('WEBHOOK_*: a URL and a Standard Webhooks secret together, and the events from the known list', async t => {
  const secret = `whsec_${randomBytes(32).toString('base64')}`
  const url = 'https://hooks.example.com/auth'
  t.same(loadConfig({ WEBHOOK_URL: url, WEBHOOK_SECRET: secret }).webhooks, {
    url, secret, events: ['user.created', 'user.updated', 'user.deleted', 'user.suspended', 'session.created', 'session.revoked'],
  })
  t.same(loadConfig({ WEBHOOK_URL: url, WEBHOOK_SECRET: secret, WEBHOOK_EVENTS: ' user.created ,session.revoked,, ' }).webhooks.events, ['user.created', 'session.revoked'], 'spaces and empty items ignored')
  t.same(loadConfig({ WEBHOOK_URL: url, WEBHOOK_SECRET: secret, WEBHOOK_EVENTS: '' }).webhooks.events.length, 6, 'empty means unset: all of them')
  for (const bytes of [24, 64]) {
    t.doesNotThrow(() => loadConfig({ WEBHOOK_URL: url, WEBHOOK_SECRET: `whsec_${randomBytes(bytes).toString('base64')}` }), `a secret of ${bytes} bytes`)
  }

  const both = /^Set both WEBHOOK_URL and WEBHOOK_SECRET, or neither$/
  const size = /^WEBHOOK_SECRET must be whsec_ followed by base64 of 24 to 64 random bytes/
  const bad: [Record<string, string>, RegExp][] = [
    [{ WEBHOOK_URL: url }, both],
    [{ WEBHOOK_SECRET: secret }, both],
    [{ WEBHOOK_URL: url, WEBHOOK_SECRET: randomBytes(32).toString('base64') }, /WEBHOOK_SECRET must match pattern/],
    [{ WEBHOOK_URL: url, WEBHOOK_SECRET: `whsec_${randomBytes(32).toString('base64url').replace(/^./, '-')}` }, /WEBHOOK_SECRET must match pattern/],
    [{ WEBHOOK_URL: url, WEBHOOK_SECRET: `whsec_${randomBytes(16).toString('base64')}` }, size],
    [{ WEBHOOK_URL: url, WEBHOOK_SECRET: `whsec_${randomBytes(65).toString('base64')}` }, size],
    [{ WEBHOOK_URL: 'hooks.example.com/auth', WEBHOOK_SECRET: secret }, /WEBHOOK_URL must match pattern/],
    [{ WEBHOOK_URL: url, WEBHOOK_SECRET: secret, WEBHOOK_EVENTS: 'user.created,user.signed_in' }, /^WEBHOOK_EVENTS: "user\.signed_in" is not one of user\.created, user\.updated, user\.deleted, user\.suspended, session\.created, session\.revoked$/],
    [{ WEBHOOK_URL: url, WEBHOOK_SECRET: secret, WEBHOOK_EVENTS: 'User.Created' }, /WEBHOOK_EVENTS: "User\.Created" is not one of/],
    [{ WEBHOOK_URL: url, WEBHOOK_SECRET: secret, WEBHOOK_EVENTS: ' , ' }, /^WEBHOOK_EVENTS names no event/],
  ]
  for (const [env, message] of bad) t.throws(() => loadConfig(env), { name: 'ConfigError', message }, JSON.stringify(env))
  for (const wrong of [`whsec_${randomBytes(16).toString('base64')}`, randomBytes(32).toString('base64')]) {
    const err = (() => { try { loadConfig({ WEBHOOK_URL: url, WEBHOOK_SECRET: wrong }) } catch (e) { return e as Error } })()
    t.ok(err && !err.message.includes(wrong.replace('whsec_', '')), 'the message does not repeat the secret')
  }
})

t.test('values are read and typed', async t => {
  const c = loadConfig({ PORT: '8080', ACCESS_TOKEN_TTL: '3600', PASSWORD_MIN_LENGTH: '8', DATABASE_URL: 'postgres://u@db:5432/auth', TRUST_PROXY: '10.0.0.0/8, 127.0.0.1' })
  t.equal(c.port, 8080)
  t.equal(c.jwt.accessTokenTtl, 3600)
  t.equal(c.passwordMinLength, 8)
  t.equal(c.databaseUrl, 'postgres://u@db:5432/auth')
  t.same(c.trustProxy, ['10.0.0.0/8', '127.0.0.1'])
  t.equal(loadConfig({ TRUST_PROXY: 'true' }).trustProxy, true)
  t.equal(loadConfig({ TRUST_PROXY: '2' }).trustProxy, 2)
  t.equal(loadConfig({ PORT: '' }).port, 3000, 'an empty variable means unset')
  t.same(loadConfig({ CORS_ORIGINS: 'https://a.example/, http://localhost:5173' }).corsOrigins, ['https://a.example', 'http://localhost:5173'])
  t.equal(loadConfig({ COOKIE_SECURE: 'false' }).cookieSecure, false)
  t.equal(loadConfig({ DOCS_ENABLED: 'false' }).docsEnabled, false)
  t.equal(loadConfig({ APP_URL: 'https://app.example.com/' }).mail.appUrl, 'https://app.example.com', 'no trailing slash in links')
  t.equal(loadConfig({ REQUIRE_EMAIL_VERIFICATION: 'true' }).mail.requireVerification, true)
})

t.test('production serves only with real mail and real links', async t => {
  const base = { NODE_ENV: 'production', SMTP_URL: 'smtp://mail.internal:587', APP_URL: 'https://app.example.com' }
  t.doesNotThrow(() => assertServable(loadConfig(base)))
  t.throws(() => assertServable(loadConfig({ ...base, SMTP_URL: '' })), { name: 'ConfigError', message: /SMTP_URL is required in production/ })
  t.throws(() => assertServable(loadConfig({ ...base, APP_URL: '' })), { name: 'ConfigError', message: /APP_URL is required in production/ })
  t.doesNotThrow(() => assertServable(loadConfig({})), 'development needs neither')
  t.throws(() => loadConfig({ APP_URL: 'app.example.com' }), { name: 'ConfigError', message: /APP_URL/ })
  t.throws(() => loadConfig({ SMTP_URL: 'http://mail' }), { name: 'ConfigError', message: /SMTP_URL/ })
})

t.test('a bad value stops the start with a message naming the variable', async t => {
  const bad: [Record<string, string>, RegExp][] = [
    [{ PORT: 'abc' }, /PORT/],
    [{ ACCESS_TOKEN_TTL: '7200' }, /ACCESS_TOKEN_TTL must be <= 3600/],
    [{ PASSWORD_MIN_LENGTH: '6' }, /PASSWORD_MIN_LENGTH must be >= 8/],
    [{ DATABASE_URL: 'mysql://localhost/db' }, /DATABASE_URL/],
    [{ NODE_ENV: 'staging' }, /NODE_ENV/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL/],
    [{ RATE_LIMIT_LOGIN_IP: '0' }, /RATE_LIMIT_LOGIN_IP/],
    [{ DATABASE_POOL_SIZE: '0' }, /DATABASE_POOL_SIZE must be >= 1/],
    [{ DATABASE_POOL_SIZE: 'many' }, /DATABASE_POOL_SIZE/],
    [{ TRUST_PROXY: 'everyone' }, /TRUST_PROXY/],
    [{ JWT_PRIVATE_KEY: 'x', JWT_PRIVATE_KEY_FILE: '/x' }, /only one of JWT_PRIVATE_KEY and JWT_PRIVATE_KEY_FILE/],
    [{ NODE_ENV: 'production', COOKIE_SECURE: 'false' }, /COOKIE_SECURE=false .* production refuses/],
    [{ CORS_ORIGINS: 'https://ok.example, *' }, /CORS_ORIGINS: "\*" is not an origin/],
    [{ CORS_ORIGINS: 'app.example.com' }, /CORS_ORIGINS/],
  ]
  for (const [env, message] of bad) t.throws(() => loadConfig(env), { name: 'ConfigError', message }, JSON.stringify(env))
})

t.test('signing keys', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'auth-keys-'))
  t.throws(() => resolveSigningKey(loadConfig({ NODE_ENV: 'production', DATA_DIR: dir })),
    { name: 'ConfigError', message: /JWT_PRIVATE_KEY or JWT_PRIVATE_KEY_FILE must be set in production/ })

  const dev = loadConfig({ DATA_DIR: dir })
  const first = resolveSigningKey(dev)
  t.equal(first.generatedPath, join(dir, 'jwt-private-key.pem'), 'generated outside production')
  t.equal(statSync(first.generatedPath!).mode & 0o777, 0o600, 'readable by the owner only')
  const again = resolveSigningKey(dev)
  t.equal(again.generatedPath, undefined)
  t.equal(again.key.kid, first.key.kid, 'reused on the next start')

  const pem = generateSigningKey().privatePem
  const fromEnv = resolveSigningKey(loadConfig({ NODE_ENV: 'production', JWT_PRIVATE_KEY: pem.replace(/\n/g, '\\n') }))
  t.equal(fromEnv.key.privatePem, pem, 'escaped newlines are accepted')
  const file = join(dir, 'key.pem')
  writeFileSync(file, pem)
  t.equal(resolveSigningKey(loadConfig({ NODE_ENV: 'production', JWT_PRIVATE_KEY_FILE: file })).key.kid, fromEnv.key.kid)
  t.match(fromEnv.key.kid, /^[A-Za-z0-9_-]{43}$/)
  t.equal(readFileSync(file, 'utf8'), pem)

  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
  t.throws(() => resolveSigningKey(loadConfig({ JWT_PRIVATE_KEY: rsa })), { message: /must be an Ed25519 key/ })
  t.throws(() => resolveSigningKey(loadConfig({ JWT_PRIVATE_KEY: 'not a key' })), { message: /JWT_PRIVATE_KEY is not a readable PEM/ })
  t.throws(() => resolveSigningKey(loadConfig({ JWT_PRIVATE_KEY_FILE: join(dir, 'missing.pem') })), { message: /JWT_PRIVATE_KEY_FILE cannot be read: ENOENT/ })
  t.type(new ConfigError('x'), Error)
})

t.test('REFRESH_TOKEN_SECRET: required in production, generated once in development, checked for size', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'auth-secret-'))
  t.throws(() => resolveRefreshSecrets(loadConfig({ NODE_ENV: 'production' })), { message: /REFRESH_TOKEN_SECRET must be set in production/ })
  const dev = loadConfig({ DATA_DIR: dir })
  const first = resolveRefreshSecrets(dev)
  t.equal(first.generatedPath, join(dir, 'refresh-token-secret'))
  t.equal(first.secrets.current.length, 32)
  t.equal(statSync(first.generatedPath!).mode & 0o777, 0o600, 'readable by the owner only')
  const again = resolveRefreshSecrets(dev)
  t.equal(again.generatedPath, undefined)
  t.same(again.secrets.current, first.secrets.current, 'reused on the next start')

  const secret = randomBytes(32)
  const set = resolveRefreshSecrets(loadConfig({ NODE_ENV: 'production', REFRESH_TOKEN_SECRET: secret.toString('base64'), REFRESH_TOKEN_PREVIOUS_SECRETS: ` ${secret.toString('base64url')} ,` }))
  t.same(set.secrets, { current: secret, previous: [secret] }, 'base64 or base64url, spaces and empty items ignored')
  t.throws(() => loadConfig({ REFRESH_TOKEN_SECRET: randomBytes(31).toString('base64') }), { message: /REFRESH_TOKEN_SECRET must be base64 of at least 32 random bytes/ })
  t.throws(() => loadConfig({ REFRESH_TOKEN_SECRET: 'not base64!'.repeat(8) }), { message: /REFRESH_TOKEN_SECRET must be base64/ })
  t.throws(() => loadConfig({ REFRESH_TOKEN_PREVIOUS_SECRETS: `${secret.toString('base64')},short` }), { message: /REFRESH_TOKEN_PREVIOUS_SECRETS \(secret 2\) must be base64/ })
})

t.test('MFA_ENCRYPTION_KEY: base64 of exactly 32 bytes', async t => {
  const key = randomBytes(32)
  t.same(loadConfig({ MFA_ENCRYPTION_KEY: key.toString('base64') }).mfa.encryptionKey, key)
  t.same(loadConfig({ MFA_ENCRYPTION_KEY: ` ${key.toString('base64url')}\n` }).mfa.encryptionKey, key, 'base64url, surrounding space ignored')
  const refused: [string, string][] = [
    ['16 bytes', randomBytes(16).toString('base64')],
    ['33 bytes', randomBytes(33).toString('base64')],
    ['not base64', 'not base64!'.repeat(4)],
    ['hex of 32 bytes (48 once read as base64)', key.toString('hex')],
  ]
  for (const [name, value] of refused) {
    t.throws(() => loadConfig({ MFA_ENCRYPTION_KEY: value }), { name: 'ConfigError', message: /^MFA_ENCRYPTION_KEY must be base64 of exactly 32 random bytes \(e\.g\. openssl rand -base64 32\)$/ }, name)
    t.throws(() => loadConfig({ NODE_ENV: 'production', MFA_ENCRYPTION_KEY: value }), { message: /MFA_ENCRYPTION_KEY/ }, `${name}, in production too`)
  }
})

t.test('MFA_ISSUER: "Auth API" unless set', async t => {
  t.equal(loadConfig({}).mfa.issuer, 'Auth API')
  t.equal(loadConfig({ MFA_ISSUER: 'Example Corp' }).mfa.issuer, 'Example Corp')
  t.equal(loadConfig({ MFA_ISSUER: '' }).mfa.issuer, 'Auth API', 'empty means unset')
  t.throws(() => loadConfig({ MFA_ISSUER: 'x'.repeat(65) }), { name: 'ConfigError', message: /MFA_ISSUER must NOT have more than 64 characters/ })
})

t.test('resolveMfaKey: required in production, generated once in development, checked for size', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'auth-mfa-key-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  t.throws(() => resolveMfaKey(loadConfig({ NODE_ENV: 'production', DATA_DIR: dir })),
    { name: 'ConfigError', message: /MFA_ENCRYPTION_KEY must be set in production \(base64 of exactly 32 random bytes, e\.g\. openssl rand -base64 32\)/ })

  const given = randomBytes(32)
  const set = resolveMfaKey(loadConfig({ NODE_ENV: 'production', DATA_DIR: dir, MFA_ENCRYPTION_KEY: given.toString('base64') }))
  t.same(set, { key: given }, 'the variable, no file')

  const dev = loadConfig({ DATA_DIR: dir })
  const first = resolveMfaKey(dev)
  const path = join(dir, 'mfa-encryption-key')
  t.equal(first.generatedPath, path, 'generated outside production')
  t.equal(first.key.length, 32)
  t.equal(statSync(path).mode & 0o777, 0o600, 'readable by the owner only')
  t.same(Buffer.from(readFileSync(path, 'utf8').trim(), 'base64'), first.key, 'kept as base64')
  const again = resolveMfaKey(dev)
  t.equal(again.generatedPath, undefined)
  t.equal(again.path, path)
  t.same(again.key, first.key, 'reused on the next start')
  t.same(resolveMfaKey(loadConfig({ DATA_DIR: dir, MFA_ENCRYPTION_KEY: given.toString('base64') })).key, given, 'the variable wins over the file')

  for (const bytes of [16, 33]) {
    writeFileSync(path, `${randomBytes(bytes).toString('base64')}\n`)
    t.throws(() => resolveMfaKey(dev), { name: 'ConfigError', message: new RegExp(`${path} must hold base64 of exactly 32 bytes; delete it to have a new one generated`) }, `a file of ${bytes} bytes`)
  }
})

t.test('the app says it generated, then uses, the development MFA key, and never logs the key', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'auth-mfa-log-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const env = { DATA_DIR: dir, MFA_ENCRYPTION_KEY: '' }
  const path = join(dir, 'mfa-encryption-key')
  const lines = (logs: string[]) => logs.map(l => JSON.parse(l) as { level: number, msg: string, path?: string })

  const first = await build(t, { env })
  const key = readFileSync(path, 'utf8').trim()
  const generated = lines(first.logs).find(l => /generated a development MFA encryption key/.test(l.msg))
  t.match(generated, { level: 40, path, msg: /set MFA_ENCRYPTION_KEY in production/ }, 'a warning naming the file and the variable')
  t.notOk(first.logs.join('').includes(key), 'the key is not in the log')
  t.notOk(lines(first.logs).some(l => /using the development MFA encryption key/.test(l.msg)))
  await first.close()

  const second = await build(t, { env })
  t.match(lines(second.logs).find(l => /using the development MFA encryption key from the data folder/.test(l.msg)), { level: 30, path })
  t.notOk(lines(second.logs).some(l => /generated a development MFA encryption key/.test(l.msg)), 'not generated again')
  t.equal(readFileSync(path, 'utf8').trim(), key, 'the file is unchanged')
  t.notOk(second.logs.join('').includes(key), 'the key is not in the log')

  const configured = await build(t)
  t.notOk(configured.logs.some(l => /development MFA encryption key/.test(l)), 'with MFA_ENCRYPTION_KEY set, nothing about a development key')
})

t.test('WEBAUTHN_*: the relying party of passkeys', async t => {
  t.same(loadConfig({}).webauthn, { rpId: 'localhost', rpName: 'Auth API', origins: ['http://localhost:3000'] }, 'development: localhost and its port')
  t.same(loadConfig({ PORT: '8080' }).webauthn.origins, ['http://localhost:8080'], 'the port of PORT')
  t.same(loadConfig({ APP_URL: 'https://app.example.com/some/path' }).webauthn, {
    rpId: 'app.example.com', rpName: 'Auth API', origins: ['https://app.example.com', 'http://localhost:3000'],
  }, 'with APP_URL: its host and its origin, and localhost in development')
  t.same(loadConfig({ APP_URL: 'http://localhost:3000' }).webauthn.origins, ['http://localhost:3000'], 'no origin twice')
  const prodBase = { NODE_ENV: 'production', APP_URL: 'https://app.example.com' }
  t.same(loadConfig(prodBase).webauthn, { rpId: 'app.example.com', rpName: 'Auth API', origins: ['https://app.example.com'] }, 'production: no localhost')

  const set = loadConfig({ WEBAUTHN_RP_ID: 'example.com', WEBAUTHN_RP_NAME: 'Example', WEBAUTHN_ORIGINS: ' https://app.example.com/ ,https://example.com,, ' })
  t.same(set.webauthn, { rpId: 'example.com', rpName: 'Example', origins: ['https://app.example.com', 'https://example.com'] }, 'overrides; spaces, trailing slashes and empty items ignored')
  t.equal(loadConfig({ WEBAUTHN_RP_NAME: '' }).webauthn.rpName, 'Auth API', 'empty means unset')
  t.same(loadConfig({ APP_URL: 'https://app.example.com', WEBAUTHN_ORIGINS: 'https://other.example.net' }).webauthn.origins, ['https://other.example.net'], 'WEBAUTHN_ORIGINS replaces the defaults')

  const bad: [Record<string, string>, RegExp][] = [
    [{ WEBAUTHN_ORIGINS: 'app.example.com' }, /^WEBAUTHN_ORIGINS: "app\.example\.com" is not an origin like https:\/\/app\.example\.com \(or android:apk-key-hash:<base64url SHA-256 of the app's signing certificate>\)$/],
    [{ WEBAUTHN_ORIGINS: 'https://app.example.com, https://app.example.com/login' }, /WEBAUTHN_ORIGINS: "https:\/\/app\.example\.com\/login" is not an origin/],
    [{ WEBAUTHN_ORIGINS: '*' }, /WEBAUTHN_ORIGINS: "\*" is not an origin/],
    [{ WEBAUTHN_RP_ID: 'https://example.com' }, /WEBAUTHN_RP_ID/],
    [{ WEBAUTHN_RP_ID: 'Example.COM' }, /WEBAUTHN_RP_ID/],
    [{ WEBAUTHN_RP_NAME: 'x'.repeat(65) }, /WEBAUTHN_RP_NAME must NOT have more than 64 characters/],
  ]
  for (const [env, message] of bad) t.throws(() => loadConfig(env), { name: 'ConfigError', message }, JSON.stringify(env))
})

t.test('WEBAUTHN_RP_ID in production: the host, or a parent domain, of every allowed origin', async t => {
  const prod = (env: Record<string, string>) => loadConfig({ NODE_ENV: 'production', ...env })
  // a serving instance checks it (the command-line tools need no origins)
  const serving = (env: Record<string, string>) => {
    const config = loadConfig({ NODE_ENV: 'production', SMTP_URL: 'smtp://mail.internal:587', APP_URL: 'https://app.example.com', ...env })
    assertServable(config)
    return config
  }
  t.throws(() => serving({ WEBAUTHN_RP_ID: 'example.com', WEBAUTHN_ORIGINS: 'https://app.example.org' }),
    { name: 'ConfigError', message: /^WEBAUTHN_RP_ID "example\.com" must be the host, or a parent domain of the host, of every WEBAUTHN_ORIGINS origin \(not of https:\/\/app\.example\.org\)$/ })
  t.throws(() => serving({ WEBAUTHN_RP_ID: 'example.com', WEBAUTHN_ORIGINS: 'https://app.example.com,https://notexample.com' }),
    { name: 'ConfigError', message: /not of https:\/\/notexample\.com\)/ }, 'a host that only ends with the same letters is no subdomain')
  t.throws(() => serving({ WEBAUTHN_RP_ID: 'app.example.com', WEBAUTHN_ORIGINS: 'https://example.com' }),
    { name: 'ConfigError', message: /WEBAUTHN_RP_ID "app\.example\.com"/ }, 'a subdomain of the origin\'s host is refused')
  t.throws(() => serving({ APP_URL: 'https://app.example.com', WEBAUTHN_RP_ID: 'api.example.com' }),
    { name: 'ConfigError', message: /not of https:\/\/app\.example\.com\)/ }, 'the origin derived from APP_URL is checked too')

  t.same(serving({ WEBAUTHN_RP_ID: 'example.com', WEBAUTHN_ORIGINS: 'https://app.example.com,https://example.com' }).webauthn,
    { rpId: 'example.com', rpName: 'Auth API', origins: ['https://app.example.com', 'https://example.com'] }, 'a parent domain and the host itself are accepted')
  t.same(serving({ APP_URL: 'https://app.example.com', WEBAUTHN_RP_ID: 'example.com' }).webauthn.origins, ['https://app.example.com'], 'a parent domain of APP_URL\'s host')
  t.same(serving({ WEBAUTHN_RP_ID: 'example.com', WEBAUTHN_ORIGINS: 'https://login.example.com:8443' }).webauthn.origins, ['https://login.example.com:8443'], 'the port is no part of the check')

  // nothing to derive origins from: the settings load (the command-line tools need no origins), a server refuses
  const none = /^WEBAUTHN_ORIGINS \(or APP_URL\) must name the origins passkeys are used from in production$/
  const mailed = { SMTP_URL: 'smtp://mail.internal:587', APP_URL: 'https://app.example.com' }
  t.same(prod({}).webauthn, { rpId: 'localhost', rpName: 'Auth API', origins: [] }, 'no APP_URL, no WEBAUTHN_ORIGINS: no origin, and no localhost in production')
  t.throws(() => assertServable(prod({ SMTP_URL: mailed.SMTP_URL })), { name: 'ConfigError', message: /^APP_URL is required in production/ }, 'a server without APP_URL is refused first for the links')
  t.throws(() => assertServable(prod({ SMTP_URL: mailed.SMTP_URL, APP_URL: mailed.APP_URL, WEBAUTHN_RP_ID: 'example.com', WEBAUTHN_ORIGINS: ' , ' })), { name: 'ConfigError', message: none }, 'a list of nothing')
  t.doesNotThrow(() => assertServable(prod(mailed)), 'APP_URL alone gives the origin')
  t.doesNotThrow(() => loadConfig({ WEBAUTHN_RP_ID: 'example.com', WEBAUTHN_ORIGINS: 'https://app.example.org' }), 'outside production the check is left to the browser')

  // an Android app: its origin is the hash of its signing certificate, tied to the RP ID by assetlinks.json
  const android = `android:apk-key-hash:${randomBytes(32).toString('base64url')}`
  t.same(prod({ WEBAUTHN_RP_ID: 'example.com', WEBAUTHN_ORIGINS: `https://app.example.com, ${android}` }).webauthn.origins, ['https://app.example.com', android], 'an Android app\'s origin beside the web app\'s')
  for (const wrong of ['android:apk-key-hash:', 'android:apk-key-hash:abc', `android:apk-key-hash:${randomBytes(32).toString('base64')}=`, `ios:${randomBytes(32).toString('base64url')}`]) {
    t.throws(() => loadConfig({ WEBAUTHN_ORIGINS: wrong }), { name: 'ConfigError', message: /^WEBAUTHN_ORIGINS: ".*" is not an origin like https:\/\/app\.example\.com \(or android:apk-key-hash:/ }, wrong)
  }
})

t.test('OIDC_*: identity providers, each from its group of variables', async t => {
  t.same(loadConfig({}).oidc, { publicUrl: 'http://localhost:3000', publicUrlSet: false, providers: [], redirectUris: ['http://localhost:3000/demo'] }, 'none by default; the demo page may sign in outside production')
  const google = { OIDC_GOOGLE_ISSUER: 'https://accounts.google.com', OIDC_GOOGLE_CLIENT_ID: 'google-id', OIDC_GOOGLE_CLIENT_SECRET: 'google-secret' }
  const mine = { OIDC_MY_IDP_ISSUER: 'https://id.example.com/realms/main', OIDC_MY_IDP_CLIENT_ID: 'mine', OIDC_MY_IDP_CLIENT_SECRET: 'mine-secret', OIDC_MY_IDP_NAME: 'My IdP', OIDC_MY_IDP_SCOPES: 'openid email' }
  const c = loadConfig({ OIDC_PROVIDERS: ' google , my-idp ,', ...google, ...mine, PUBLIC_URL: 'https://api.example.com/', OAUTH_REDIRECT_URIS: 'https://app.example.com/cb, com.example.app:/oauth ,' })
  t.same(c.oidc.providers.map(p => ({ ...p, issuer: p.issuer.href })), [
    { id: 'google', name: 'google', issuer: 'https://accounts.google.com/', clientId: 'google-id', clientSecret: 'google-secret', scopes: 'openid email profile' },
    { id: 'my-idp', name: 'My IdP', issuer: 'https://id.example.com/realms/main', clientId: 'mine', clientSecret: 'mine-secret', scopes: 'openid email' },
  ], 'the name defaults to the id, the scopes to openid email profile; my-idp reads OIDC_MY_IDP_*')
  t.equal(c.oidc.publicUrl, 'https://api.example.com', 'no trailing slash')
  t.same(c.oidc.redirectUris, ['https://app.example.com/cb', 'com.example.app:/oauth', 'https://api.example.com/demo'])
  t.equal(loadConfig({ PORT: '8080' }).oidc.publicUrl, 'http://localhost:8080', 'development: localhost and PORT')

  const bad: [Record<string, string>, RegExp][] = [
    [{ OIDC_PROVIDERS: 'Google', ...google }, /^OIDC_PROVIDERS: "Google" is not an id of lower-case letters, digits and dashes$/],
    [{ OIDC_PROVIDERS: 'my_idp' }, /OIDC_PROVIDERS: "my_idp"/],
    [{ OIDC_PROVIDERS: 'google,google', ...google }, /OIDC_PROVIDERS names a provider twice/],
    [{ OIDC_PROVIDERS: 'google', ...google, OIDC_GOOGLE_ISSUER: '' }, /^OIDC_GOOGLE_ISSUER is required for the provider "google" of OIDC_PROVIDERS$/],
    [{ OIDC_PROVIDERS: 'google', ...google, OIDC_GOOGLE_CLIENT_ID: ' ' }, /^OIDC_GOOGLE_CLIENT_ID is required/],
    [{ OIDC_PROVIDERS: 'my-idp', ...mine, OIDC_MY_IDP_CLIENT_SECRET: '' }, /^OIDC_MY_IDP_CLIENT_SECRET is required for the provider "my-idp"/],
    [{ OIDC_PROVIDERS: 'google', ...google, OIDC_GOOGLE_ISSUER: 'accounts.google.com' }, /^OIDC_GOOGLE_ISSUER: "accounts\.google\.com" is not a URL$/],
    [{ OIDC_PROVIDERS: 'google', ...google, OIDC_GOOGLE_ISSUER: 'ftp://accounts.google.com' }, /^OIDC_GOOGLE_ISSUER must be an https URL/],
    [{ OIDC_PROVIDERS: 'google', ...google, OIDC_GOOGLE_SCOPES: 'email profile' }, /^OIDC_GOOGLE_SCOPES must include openid$/],
    [{ PUBLIC_URL: 'api.example.com' }, /PUBLIC_URL/],
  ]
  for (const [env, message] of bad) t.throws(() => loadConfig(env), { name: 'ConfigError', message }, JSON.stringify(env))

  // http issuers: development and tests only
  const local = { OIDC_PROVIDERS: 'local', OIDC_LOCAL_ISSUER: 'http://127.0.0.1:8080', OIDC_LOCAL_CLIENT_ID: 'id', OIDC_LOCAL_CLIENT_SECRET: 'secret' }
  t.equal(loadConfig(local).oidc.providers[0]!.issuer.protocol, 'http:', 'accepted outside production')
  t.equal(loadConfig({ ...local, NODE_ENV: 'test' }).oidc.providers.length, 1, 'and in tests')
  t.throws(() => loadConfig({ ...local, NODE_ENV: 'production' }), { name: 'ConfigError', message: /^OIDC_LOCAL_ISSUER must be an https URL in production$/ })
})

t.test('OAUTH_REDIRECT_URIS: exact, absolute, no fragment, no script; http only to a loopback address in production', async t => {
  const uris = (value: string, env: Record<string, string> = {}) => loadConfig({ OAUTH_REDIRECT_URIS: value, ...env }).oidc.redirectUris
  const fine = 'https://app.example.com/oauth/callback,com.example.app:/oauth,http://localhost:5173/cb,http://127.0.0.1:8000/cb,http://[::1]:8000/cb'
  t.same(uris(fine, { NODE_ENV: 'production' }), fine.split(','), 'web, mobile scheme and loopback URIs in production, nothing added')
  t.same(uris('http://app.example.com/cb'), ['http://app.example.com/cb', 'http://localhost:3000/demo'], 'plain http outside production')
  const refused: [string, RegExp][] = [
    ['/oauth/callback', /^OAUTH_REDIRECT_URIS: "\/oauth\/callback" is not an absolute URI$/],
    ['app.example.com/cb', /is not an absolute URI/],
    ['https://app.example.com/cb#frag', /^OAUTH_REDIRECT_URIS: "https:\/\/app\.example\.com\/cb#frag" has a fragment$/],
    ['javascript:alert(1)', /^OAUTH_REDIRECT_URIS: "javascript:alert\(1\)" is not a redirect URI$/],
    ['JavaScript:alert(1)', /is not a redirect URI/],
    ['data:text/html,hi', /is not a redirect URI/],
  ]
  for (const [value, message] of refused) {
    t.throws(() => uris(`https://app.example.com/cb,${value}`), { name: 'ConfigError', message }, value)
  }
  t.throws(() => uris('http://app.example.com/cb', { NODE_ENV: 'production' }),
    { name: 'ConfigError', message: /^OAUTH_REDIRECT_URIS: "http:\/\/app\.example\.com\/cb" is http in production/ })
  t.throws(() => uris('http://localhost.example.com/cb', { NODE_ENV: 'production' }), { name: 'ConfigError', message: /is http in production/ }, 'a name that only starts like localhost')
})

t.test('production serves identity providers only with PUBLIC_URL', async t => {
  const base = { NODE_ENV: 'production', SMTP_URL: 'smtp://mail.internal:587', APP_URL: 'https://app.example.com' }
  const google = { OIDC_PROVIDERS: 'google', OIDC_GOOGLE_ISSUER: 'https://accounts.google.com', OIDC_GOOGLE_CLIENT_ID: 'id', OIDC_GOOGLE_CLIENT_SECRET: 'secret' }
  t.throws(() => assertServable(loadConfig({ ...base, ...google })), { name: 'ConfigError', message: /^PUBLIC_URL is required in production when OIDC_PROVIDERS is set/ })
  t.doesNotThrow(() => assertServable(loadConfig({ ...base, ...google, PUBLIC_URL: 'https://api.example.com' })))
  t.doesNotThrow(() => assertServable(loadConfig(base)), 'without a provider it is not needed')
  t.doesNotThrow(() => assertServable(loadConfig(google)), 'nor outside production')
  t.same(loadConfig({ ...base, ...google, PUBLIC_URL: 'https://api.example.com' }).oidc.redirectUris, [], 'no demo page in production')
})
