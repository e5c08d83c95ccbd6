import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { AccountService } from '../auth/account-service.js'
import { accessTokens, type AccessTokens } from '../auth/access-tokens.js'
import { databaseAttemptThrottle, FORGOT_WINDOW_MS, redisAttemptThrottle } from '../auth/attempt-throttle.js'
import { EmailVerificationService } from '../auth/email-verification.js'
import { FederationService } from '../auth/federation.js'
import { IdentityProviders } from '../auth/identity-providers.js'
import type { RefreshSecrets, SigningKey } from '../auth/keys.js'
import { MfaService } from '../auth/mfa.js'
import { mfaSecrets } from '../auth/mfa-secrets.js'
import { PasskeyService } from '../auth/passkeys.js'
import { PasswordResetService } from '../auth/password-reset.js'
import { dummyHash } from '../auth/passwords.js'
import { refreshTokens } from '../auth/refresh-tokens.js'
import { SessionService } from '../auth/sessions.js'
import { SecurityEvents } from '../auth/security-events.js'
import { SignInService } from '../auth/sign-in.js'

declare module 'fastify' {
  interface FastifyInstance {
    accessTokens: AccessTokens
    sessions: SessionService
    signIn: SignInService
    mfa: MfaService
    passkeys: PasskeyService
    accounts: AccountService
    passwordReset: PasswordResetService
    emailVerification: EmailVerificationService
    identityProviders: IdentityProviders
    federation: FederationService
    events: SecurityEvents
  }
}

/** The app's own services, built once from the config, the keys and the infrastructure plugins. */
async function servicesPlugin (app: FastifyInstance, opts: { signingKey: SigningKey, refreshSecrets: RefreshSecrets, mfaKey: Buffer }) {
  const { config, clock, db, redis } = app
  const attempts = (limit: number, windowMs?: number) => redis
    ? redisAttemptThrottle(redis, config.redisKeyPrefix, limit, windowMs)
    : databaseAttemptThrottle(db, limit, windowMs)
  // one per-account count for sign-ins and for the routes that ask for the current password
  const signInThrottle = attempts(config.rateLimit.loginAccount)
  const mailQueued = () => app.mailer.kick()

  const tokens = accessTokens(config, opts.signingKey)
  const events = new SecurityEvents({ config, clock, queued: mailQueued })
  app.decorate('events', events)
  const sessions = new SessionService({ db, config, clock, accessTokens: tokens, refreshTokens: refreshTokens(opts.refreshSecrets), events })
  const emailVerification = new EmailVerificationService({ db, config, clock, mailSecret: opts.signingKey.mailSecret, mailQueued, events })
  app.decorate('accessTokens', tokens)
  app.decorate('sessions', sessions)
  app.decorate('emailVerification', emailVerification)
  const mfa = new MfaService({ db, config, clock, sessions, secrets: mfaSecrets(opts.mfaKey), throttle: signInThrottle, events })
  app.decorate('mfa', mfa)
  const passkeys = new PasskeyService({ db, config, clock, events })
  app.decorate('passkeys', passkeys)
  const identityProviders = new IdentityProviders({ config, clock })
  const federation = new FederationService({ db, config, clock, providers: identityProviders, verification: emailVerification, events })
  app.decorate('identityProviders', identityProviders)
  app.decorate('federation', federation)
  app.decorate('signIn', new SignInService({ db, config, clock, sessions, verification: emailVerification, mfa, passkeys, federation, events, throttle: signInThrottle }))
  app.decorate('accounts', new AccountService({ db, config, clock, sessions, throttle: signInThrottle, events, mailSecret: opts.signingKey.mailSecret }))
  app.decorate('passwordReset', new PasswordResetService({
    db, config, clock, sessions, requestThrottle: attempts(config.rateLimit.forgot, FORGOT_WINDOW_MS), signInThrottle, mailQueued, events,
  }))
  // computed now, so the first sign-in of an unknown account costs no more than any other
  await dummyHash()
}

export default fp(servicesPlugin, { name: 'services', dependencies: ['config', 'db', 'redis', 'mail'] })
