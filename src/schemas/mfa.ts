import { Type, type Static } from 'typebox'
import { toProblem } from '../errors.js'
import { Problem, Profile, userExample } from './common.js'

export const MfaStatus = Type.Object({
  totp: Type.Boolean({ description: 'Whether sign-in asks for a code of an authenticator app' }),
  recoveryCodesLeft: Type.Integer({ minimum: 0, description: 'Unused recovery codes' }),
  passkeys: Type.Integer({ minimum: 0, description: 'Registered passkeys' }),
}, { description: 'The second factors of the account' })
export type MfaStatus = Static<typeof MfaStatus>

export const Me = Type.Object({ ...Profile.properties, mfa: MfaStatus }, {
  description: 'The signed-in user, with role, verification state and second factors',
  examples: [{ ...userExample, role: 'user', emailVerified: true, mfa: { totp: true, recoveryCodesLeft: 10, passkeys: 1 } }],
})

const SECRET_EXAMPLE = 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP'
const RECOVERY_EXAMPLES = ['7k3q-m2xd-9hfa', 'p4ew-0zc8-tnjr', 'b6vy-31kd-wq5m', 'hx2r-9tfe-c7an', 'm0sd-k8pz-4gvq', 'y3ja-6ncw-2rht', 'e9kb-t5qx-0vmf', 'r1wz-7dgp-s6ce', 'f8nh-2ymv-k3jt', 'q5tc-e0ab-9wxd']

export const TotpEnrolment = Type.Object({
  secret: Type.String({ description: 'The shared secret, base32 without padding (160 bits), for typing into an app by hand' }),
  otpauthUrl: Type.String({ description: 'otpauth://totp/ URI with issuer, algorithm, digits and period: what the QR code holds' }),
  qrSvg: Type.String({ description: 'An SVG image of a QR code of otpauthUrl' }),
}, {
  description: 'A new pending secret: scan the QR code (or type the secret) into an authenticator app, then confirm with a code',
  examples: [{
    secret: SECRET_EXAMPLE,
    otpauthUrl: `otpauth://totp/Auth%20API:ada%40example.com?secret=${SECRET_EXAMPLE}&issuer=Auth%20API&algorithm=SHA1&digits=6&period=30`,
    qrSvg: '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 37 37">…</svg>',
  }],
})

const Code = Type.String({ minLength: 1, maxLength: 64, description: 'Six digits from the authenticator app (spaces ignored)', examples: ['123456'] })
const CodeOrRecoveryCode = Type.String({ minLength: 1, maxLength: 64, description: 'A current code of the authenticator app, or an unused recovery code', examples: ['123456'] })
const RecoveryCode = Type.String({ minLength: 1, maxLength: 64, description: 'An unused recovery code; case, spaces and hyphens do not matter', examples: ['7k3q-m2xd-9hfa'] })

export const TotpConfirmation = Type.Object({ code: Code }, { additionalProperties: false, examples: [{ code: '123456' }] })
export const SecondFactorProof = Type.Object({ code: CodeOrRecoveryCode }, {
  additionalProperties: false,
  description: 'Proof of the second factor: a current code or an unused recovery code (which it spends)',
  examples: [{ code: '123456' }],
})

export const RecoveryCodes = Type.Object({
  recoveryCodes: Type.Array(Type.String(), { minItems: 10, maxItems: 10, description: 'Each works once in place of a code. Shown only now: store them somewhere safe.' }),
}, { description: 'Ten new recovery codes; any earlier ones are void', examples: [{ recoveryCodes: RECOVERY_EXAMPLES }] })

const MFA_TOKEN_EXAMPLE = 'q3Zt0k8yJd2Xr6bW1nC5vH9sLm4pAeUfGiTo7RxYwQc'
export const MfaToken = Type.String({ minLength: 1, maxLength: 256, description: 'From the mfa_required answer of /login', examples: [MFA_TOKEN_EXAMPLE] })

export const LoginMfaBody = Type.Object({
  mfaToken: MfaToken,
  code: Type.Optional(Code),
  recoveryCode: Type.Optional(RecoveryCode),
}, {
  additionalProperties: false,
  description: 'The mfaToken and exactly one of code and recoveryCode',
  examples: [{ mfaToken: MFA_TOKEN_EXAMPLE, code: '123456' }, { mfaToken: MFA_TOKEN_EXAMPLE, recoveryCode: '7k3q-m2xd-9hfa' }],
})

export const MFA_METHODS = ['totp', 'recovery_code'] as const
export type MfaMethod = typeof MFA_METHODS[number]

/** /login's 403: email_not_verified, or mfa_required with the members the second step needs. */
export const LoginForbidden = {
  description: 'email_not_verified; account_suspended (after the credentials check); or mfa_required: the first factor was right and the account has a second factor; send mfaToken and a code to /login/mfa',
  content: {
    'application/problem+json': {
      schema: {
        ...Problem,
        properties: {
          ...Problem.properties,
          mfaToken: Type.String({ description: 'mfa_required: single use, valid 5 minutes' }),
          methods: Type.Array(Type.Unsafe<MfaMethod>({ type: 'string', enum: [...MFA_METHODS] }), { description: 'mfa_required: what /login/mfa accepts for this account' }),
        },
        examples: [{ ...toProblem('mfa_required', 'Send a code of your authenticator app (or a recovery code) with this mfaToken to /login/mfa'), mfaToken: MFA_TOKEN_EXAMPLE, methods: ['totp', 'recovery_code'] }],
      },
    },
  },
}
