import type { Configuration } from 'openid-client'
import type { Clock } from '../clock.js'
import type { Config, OidcProviderSettings } from '../config.js'
import { ApiError } from '../errors.js'

// Loaded at the first use of a provider: a service with none configured never holds it.
let library: Promise<typeof import('openid-client')> | undefined
export const openidClient = () => (library ??= import('openid-client'))

/** A failed discovery is remembered this long, so a provider that is down is not asked on every request. */
export const DISCOVERY_RETRY_MS = 10_000
/** A discovered configuration is read again after a day (endpoints and keys move rarely; keys are refetched on an unknown kid anyway). */
export const DISCOVERY_TTL_MS = 24 * 3_600_000
/** Each request to a provider gives up after this long. */
const REQUEST_TIMEOUT_SECONDS = 10

type Entry =
  | { state: 'pending', promise: Promise<Configuration> }
  | { state: 'ready', configuration: Configuration, until: number }
  | { state: 'failed', until: number }

export const providerUnavailable = (provider: OidcProviderSettings, cause?: unknown) =>
  new ApiError('provider_unavailable', `${provider.name} cannot be reached right now; try again in a moment`, { cause })

/**
 * The identity providers of OIDC_PROVIDERS and their discovered configurations (openid-client): found on
 * first use, shared by concurrent callers, retried a few seconds after a failure, never failing another
 * provider's routes.
 */
export class IdentityProviders {
  private readonly entries = new Map<string, Entry>()

  constructor (private readonly deps: { config: Config, clock: Clock }) {}

  list (): { id: string, name: string }[] {
    return this.deps.config.oidc.providers.map(p => ({ id: p.id, name: p.name }))
  }

  /** The settings of a configured provider; 404 for any other id. */
  settings (id: string): OidcProviderSettings {
    const provider = this.deps.config.oidc.providers.find(p => p.id === id)
    if (!provider) throw new ApiError('not_found', 'No identity provider has this id')
    return provider
  }

  /** Where the provider sends the user back: PUBLIC_URL/oauth/<id>/callback, registered at the provider. */
  callbackUrl (provider: OidcProviderSettings): string {
    return `${this.deps.config.oidc.publicUrl}/oauth/${provider.id}/callback`
  }

  /** The provider's discovered configuration; 503 provider_unavailable while it cannot be had. */
  async configuration (provider: OidcProviderSettings): Promise<Configuration> {
    const now = this.deps.clock()
    const entry = this.entries.get(provider.id)
    if (entry?.state === 'ready' && now < entry.until) return entry.configuration
    if (entry?.state === 'pending') return entry.promise
    if (entry?.state === 'failed' && now < entry.until) throw providerUnavailable(provider)
    const promise = this.discover(provider).then(configuration => {
      this.entries.set(provider.id, { state: 'ready', configuration, until: this.deps.clock() + DISCOVERY_TTL_MS })
      return configuration
    }, (err: unknown) => {
      this.entries.set(provider.id, { state: 'failed', until: this.deps.clock() + DISCOVERY_RETRY_MS })
      throw providerUnavailable(provider, err)
    })
    this.entries.set(provider.id, { state: 'pending', promise })
    return promise
  }

  private async discover (provider: OidcProviderSettings): Promise<Configuration> {
    const client = await openidClient()
    const insecure = provider.issuer.protocol === 'http:'
    const configuration = await client.discovery(provider.issuer, provider.clientId, { client_secret: provider.clientSecret }, client.ClientSecretPost(provider.clientSecret), {
      // kept by the configuration for every later request too
      timeout: REQUEST_TIMEOUT_SECONDS,
      // development and tests only: production refuses http issuers at start-up
      execute: insecure ? [client.allowInsecureRequests] : [],
    })
    // The ID token comes straight from the token endpoint, where openid-client would trust TLS alone:
    // check its signature against the provider's JWKS as well.
    client.enableNonRepudiationChecks(configuration)
    return configuration
  }
}
