import { Type } from 'typebox'
import { STORED_TEXT, RememberMe } from './common.js'

// The browser's JSON (the WebAuthn Level 3 toJSON shapes, as @simplewebauthn/browser gives them), checked
// in outline here and in full by the verification.
const B64 = (description: string, maxLength = 4096) => Type.String({ maxLength, pattern: '^[A-Za-z0-9_-]*={0,2}$', description })
const open = { additionalProperties: true }

const credentialExample = {
  id: 'q2t8xVwT9xk3yX1iQm0b5Q',
  rawId: 'q2t8xVwT9xk3yX1iQm0b5Q',
  type: 'public-key',
  clientExtensionResults: {},
  authenticatorAttachment: 'platform',
}

export const RegistrationResponse = Type.Object({
  id: B64('Credential id (base64url)', 1400),
  rawId: B64('The same id', 1400),
  type: Type.Literal('public-key'),
  response: Type.Object({
    clientDataJSON: B64('base64url'),
    attestationObject: B64('base64url', 8192),
    transports: Type.Optional(Type.Array(Type.String({ maxLength: 32 }), { maxItems: 16 })),
  }, open),
  clientExtensionResults: Type.Optional(Type.Object({}, open)),
  authenticatorAttachment: Type.Optional(Type.String({ maxLength: 32 })),
}, { ...open, description: 'RegistrationResponseJSON: what navigator.credentials.create() gave (startRegistration of @simplewebauthn/browser)' })

export const AuthenticationResponse = Type.Object({
  id: B64('Credential id (base64url)', 1400),
  rawId: B64('The same id', 1400),
  type: Type.Literal('public-key'),
  response: Type.Object({
    clientDataJSON: B64('base64url'),
    authenticatorData: B64('base64url'),
    signature: B64('base64url'),
    userHandle: Type.Optional(B64('base64url', 1024)),
  }, open),
  clientExtensionResults: Type.Optional(Type.Object({}, open)),
  authenticatorAttachment: Type.Optional(Type.String({ maxLength: 32 })),
}, { ...open, description: 'AuthenticationResponseJSON: what navigator.credentials.get() gave (startAuthentication of @simplewebauthn/browser)' })

const PasskeyName = Type.String({ minLength: 1, maxLength: 100, pattern: STORED_TEXT, description: 'A name to tell it apart ("iPhone", "YubiKey")', examples: ['iPhone'] })

export const PasskeyRegistration = Type.Object({ response: RegistrationResponse, name: Type.Optional(PasskeyName) }, {
  additionalProperties: false,
  examples: [{ response: { ...credentialExample, response: { clientDataJSON: 'eyJ0eXBlIjoid2ViYXV0aG4uY3JlYXRlIn0', attestationObject: 'o2NmbXRkbm9uZQ', transports: ['internal'] } }, name: 'iPhone' }],
})

export const PasskeySignIn = Type.Object({ response: AuthenticationResponse, rememberMe: Type.Optional(RememberMe) }, {
  additionalProperties: false,
  examples: [{ response: { ...credentialExample, response: { clientDataJSON: 'eyJ0eXBlIjoid2ViYXV0aG4uZ2V0In0', authenticatorData: 'SZYN5YgOjGh0NBcPZHZgW4_krrmihjLHmVzzuoMdl2MFAAAAAQ', signature: 'MEUCIQ' } } }],
})

export const PasskeyRename = Type.Object({ name: PasskeyName }, { additionalProperties: false, examples: [{ name: 'Work laptop' }] })
export const PasskeyParams = Type.Object({ id: Type.String({ description: 'The passkey id (from GET /passkeys)' }) })

const passkeyExample = { id: '01a2082a-4c53-76c6-bedb-c9c808e9776d', name: 'iPhone', createdAt: '2026-11-23T11:28:39.506Z', lastUsedAt: null, backedUp: true, deviceType: 'multiDevice' }

export const PasskeyView = Type.Object({
  id: Type.String({ format: 'uuid' }),
  name: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
  lastUsedAt: Type.Unsafe<string | null>({ type: ['string', 'null'], format: 'date-time', description: 'The last sign-in with it' }),
  backedUp: Type.Boolean({ description: 'Synced to a cloud account (a multi-device passkey), so a lost phone does not lose it' }),
  deviceType: Type.Unsafe<'singleDevice' | 'multiDevice'>({ type: 'string', enum: ['singleDevice', 'multiDevice'] }),
}, { description: 'A passkey of the signed-in user (never its key)', examples: [passkeyExample] })

export const PasskeyList = Type.Object({ passkeys: Type.Array(PasskeyView) }, { description: 'The user\'s passkeys, oldest first', examples: [{ passkeys: [passkeyExample] }] })

// The options are the WebAuthn JSON shapes, passed to startRegistration / startAuthentication as they are.
export const CreationOptions = Type.Object({
  challenge: Type.String(),
  rp: Type.Object({ id: Type.Optional(Type.String()), name: Type.String() }),
  user: Type.Object({ id: Type.String({ description: 'A random handle of the user (base64url): not the user id, not the email' }), name: Type.String(), displayName: Type.String() }),
  pubKeyCredParams: Type.Array(Type.Object({ type: Type.String(), alg: Type.Integer() })),
  timeout: Type.Optional(Type.Integer()),
  excludeCredentials: Type.Optional(Type.Array(Type.Object({ id: Type.String(), type: Type.String(), transports: Type.Optional(Type.Array(Type.String())) }))),
  authenticatorSelection: Type.Optional(Type.Object({ residentKey: Type.Optional(Type.String()), userVerification: Type.Optional(Type.String()), requireResidentKey: Type.Optional(Type.Boolean()) })),
  attestation: Type.Optional(Type.String()),
  extensions: Type.Optional(Type.Object({ credProps: Type.Optional(Type.Boolean()) })),
  hints: Type.Optional(Type.Array(Type.String())),
}, {
  description: 'PublicKeyCredentialCreationOptionsJSON: pass to startRegistration({ optionsJSON }); the challenge works once, for 5 minutes',
  examples: [{
    challenge: 'mBmlYMRtjr0gSrPjS3Y7-4WYn4hI1PCbZb7xN9YQ8Rk',
    rp: { name: 'Auth API', id: 'localhost' },
    user: { id: 'h5ufBzu9qJr3TnA0n2m4mTmYtc8WWlQ3I0y2ZFvV1z4', name: 'ada@example.com', displayName: 'Ada Lovelace' },
    pubKeyCredParams: [{ alg: -8, type: 'public-key' }, { alg: -7, type: 'public-key' }, { alg: -257, type: 'public-key' }],
    timeout: 300000,
    attestation: 'none',
    excludeCredentials: [],
    authenticatorSelection: { residentKey: 'required', userVerification: 'preferred', requireResidentKey: true },
    extensions: { credProps: true },
    hints: [],
  }],
})

export const RequestOptions = Type.Object({
  challenge: Type.String(),
  timeout: Type.Optional(Type.Integer()),
  rpId: Type.Optional(Type.String()),
  allowCredentials: Type.Optional(Type.Array(Type.Object({ id: Type.String(), type: Type.String(), transports: Type.Optional(Type.Array(Type.String())) }))),
  userVerification: Type.Optional(Type.String()),
  extensions: Type.Optional(Type.Object({}, open)),
}, {
  description: 'PublicKeyCredentialRequestOptionsJSON: pass to startAuthentication({ optionsJSON }); the challenge works once, for 5 minutes',
  examples: [{ challenge: 'Yq2lMyFJfP1p3S0c8hH1tZ9f3Rk8d2bC0xW5uV7aQeI', timeout: 300000, rpId: 'localhost', allowCredentials: [], userVerification: 'preferred' }],
})
