import { Type } from 'typebox'
import { STORED_TEXT, nullable, RememberMe } from './common.js'

// RFC 7636: a verifier is 43-128 unreserved characters; an S256 challenge is base64url of 32 bytes.
const CodeChallenge = Type.String({ pattern: '^[A-Za-z0-9_-]{43}$', description: 'base64url(SHA-256(code_verifier)), RFC 7636 S256', examples: ['E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM'] })
const ClientState = Type.String({ maxLength: 1024, pattern: STORED_TEXT, description: 'The client\'s own state, handed back untouched on its redirect URI', examples: ['af0ifjsldkj'] })
const RedirectUri = Type.String({ maxLength: 2048, description: 'Exactly one of OAUTH_REDIRECT_URIS (a web URL or an app scheme such as com.example.app:/oauth)', examples: ['https://app.example.com/oauth/callback'] })

export const ProviderList = Type.Object({
  providers: Type.Array(Type.Object({
    id: Type.String({ description: 'Used in the paths /oauth/{id}/…' }),
    name: Type.String({ description: 'For a "Sign in with …" button' }),
  })),
}, { description: 'The identity providers configured (OIDC_PROVIDERS)', examples: [{ providers: [{ id: 'google', name: 'Google' }] }] })

export const ProviderParams = Type.Object({ id: Type.String({ maxLength: 64, description: 'A provider id of /oauth/providers' }) })

export const AuthorizeQuery = Type.Object({
  redirect_uri: RedirectUri,
  code_challenge: CodeChallenge,
  code_challenge_method: Type.Literal('S256', { description: 'Only S256' }),
  state: Type.Optional(ClientState),
})

export const CallbackQuery = Type.Object({
  code: Type.Optional(Type.String({ maxLength: 4096 })),
  state: Type.Optional(Type.String({ maxLength: 1024 })),
  error: Type.Optional(Type.String({ maxLength: 256 })),
  error_description: Type.Optional(Type.String({ maxLength: 4096 })),
  iss: Type.Optional(Type.String({ maxLength: 2048, description: 'RFC 9207: checked when present' })),
}, { additionalProperties: true })

export const OauthTokenBody = Type.Object({
  code: Type.String({ minLength: 1, maxLength: 256, description: 'The code= of the redirect (60 seconds, once)' }),
  codeVerifier: Type.String({ pattern: '^[A-Za-z0-9._~-]{43,128}$', description: 'The verifier of the code_challenge sent to /oauth/{id}/authorize' }),
  rememberMe: Type.Optional(RememberMe),
}, { additionalProperties: false, examples: [{ code: 'Xl2pM3f1w0m1Gk2s6v8q8y4pW0b3d2nB1n0A7hJ5cT0', codeVerifier: 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk' }] })

export const LinkBody = Type.Object({
  redirectUri: RedirectUri,
  codeChallenge: CodeChallenge,
  state: Type.Optional(ClientState),
}, { additionalProperties: false, examples: [{ redirectUri: 'https://app.example.com/oauth/callback', codeChallenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM' }] })

export const LinkStarted = Type.Object({
  authorizeUrl: Type.String({ format: 'uri', description: 'Send the browser here; the provider returns it to redirectUri with linked=<provider id> (or error=<code>)' }),
}, { description: 'The flow is started', examples: [{ authorizeUrl: 'https://accounts.example.com/authorize?response_type=code&client_id=auth-api&state=…' }] })

export const Identity = Type.Object({
  id: Type.String({ format: 'uuid' }),
  provider: Type.String({ description: 'The provider id' }),
  email: nullable(Type.String({ description: 'The email the provider gave when it was linked' })),
  createdAt: Type.String({ format: 'date-time' }),
})

export const IdentityList = Type.Object({ identities: Type.Array(Identity) }, {
  examples: [{ identities: [{ id: '01a2082a-4c53-76c6-bedb-c9c808e9776e', provider: 'google', email: 'ada@example.com', createdAt: '2026-11-23T11:28:39.506Z' }] }],
})

export const IdentityParams = Type.Object({ identityId: Type.String({ maxLength: 64 }) })
