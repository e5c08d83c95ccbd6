import { Type, type Static } from 'typebox'
import { DisplayName, Email, Password, RememberMe, User, userExample, Username } from './common.js'

// A refresh token as the service issues it (this one is made with another key and opens nothing).
const REFRESH_EXAMPLE = 'AQGiCCpMU3bGvtvJyAjpd20AAAADGEFYmYKjN_KDlPLNwddUqFA0yd_NOgPzPWf4m9c0BhE'
export const RefreshTokenString = Type.String({ maxLength: 4096, description: 'Opaque refresh token (base64url)', examples: [REFRESH_EXAMPLE] })

export const RegisterBody = Type.Object({
  email: Email,
  password: Password,
  username: Type.Optional(Username),
  name: Type.Optional(DisplayName),
  rememberMe: Type.Optional(RememberMe),
}, { additionalProperties: false, examples: [{ email: 'ada@example.com', password: 'correct horse battery staple', username: 'ada_l', name: 'Ada Lovelace' }] })

export const LoginBody = Type.Object({
  email: Type.Optional(Email),
  username: Type.Optional(Username),
  password: Type.String({ maxLength: 1024 }),
  rememberMe: Type.Optional(RememberMe),
}, { additionalProperties: false, description: 'Exactly one of email and username', examples: [{ email: 'ada@example.com', password: 'correct horse battery staple' }] })

export const RefreshBody = Type.Object({ refreshToken: RefreshTokenString }, {
  additionalProperties: false,
  description: 'In cookie mode send no body at all: the refresh cookie is read instead.',
  examples: [{ refreshToken: REFRESH_EXAMPLE }],
})

export const LogoutBody = Type.Object({
  refreshToken: Type.Optional(RefreshTokenString),
  scope: Type.Optional(Type.Union([Type.Literal('local'), Type.Literal('others'), Type.Literal('global')], {
    description: 'local (default): this session; others: every other session of the user; global: all of them. others and global need the bearer token.',
  })),
}, {
  additionalProperties: false,
  description: 'Optional: with no body, the bearer token (or the refresh cookie) names the session',
  examples: [{ refreshToken: REFRESH_EXAMPLE, scope: 'local' }],
})

export const TokenResponse = Type.Object({
  tokenType: Type.Literal('Bearer'),
  accessToken: Type.String({ description: 'EdDSA-signed JWT (typ at+jwt)' }),
  expiresIn: Type.Integer({ description: 'Seconds until the access token expires' }),
  refreshToken: Type.Optional(Type.String({ description: 'Opaque, single use: each refresh returns a new one. Absent in cookie mode (X-Auth-Mode: cookie), where it is set as an HttpOnly cookie instead.' })),
  refreshExpiresIn: Type.Optional(Type.Integer({ description: 'Seconds until the refresh token expires unless used. Absent in cookie mode.' })),
  user: User,
}, {
  description: 'Signed in: an access token for the Authorization header, and a refresh token to get the next one',
  examples: [{
    tokenType: 'Bearer',
    accessToken: 'eyJhbGciOiJFZERTQSIsInR5cCI6ImF0K2p3dCIsImtpZCI6Ii4uLiJ9.eyJzdWIiOiIuLi4ifQ.c2lnbmF0dXJl',
    expiresIn: 900,
    refreshToken: REFRESH_EXAMPLE,
    refreshExpiresIn: 43200,
    user: userExample,
  }],
})

export type TokenResponse = Static<typeof TokenResponse>
