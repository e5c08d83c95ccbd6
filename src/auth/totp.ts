// Both libraries are loaded at first use: a process whose users never enrol keeps their memory.
let otp: Promise<typeof import('otplib')> | undefined
const otplib = () => (otp ??= import('otplib'))

// RFC 6238 as every authenticator app reads it: HMAC-SHA-1, 6 digits, 30-second steps.
export const TOTP_PERIOD = 30
const DIGITS = 6
/** How many steps either side of the current one a code may come from (clock drift, typing time). */
const DRIFT_STEPS = 1

/** A new secret: 160 random bits, base32 without padding. */
export const newTotpSecret = async () => (await otplib()).generateSecret({ length: 20 })

/**
 * The otpauth:// URI an authenticator app scans. Written out here rather than by the library's builder,
 * which leaves out algorithm, digits and period when they are the defaults (some apps then guess).
 */
export function otpauthUrl (issuer: string, account: string, secret: string): string {
  const label = `${encodeURIComponent(issuer)}:${encodeURIComponent(account)}`
  return `otpauth://totp/${label}?secret=${secret}&issuer=${encodeURIComponent(issuer)}&algorithm=SHA1&digits=${DIGITS}&period=${TOTP_PERIOD}`
}

/** An SVG QR code of `text`, for a page to show as it is. */
export const qrSvg = async (text: string) => (await import('qrcode')).default.toString(text, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 })

/** A six-digit code as people type it: spaces and hyphens ignored. Undefined when it cannot be one. */
export function totpCode (input: string): string | undefined {
  const code = input.replace(/[\s-]/g, '')
  return /^\d{6}$/.test(code) ? code : undefined
}

/** The 30-second step `code` belongs to, from the current step or one either side of it; undefined when none. */
export async function matchingStep (secret: string, code: string, nowMs: number): Promise<number | undefined> {
  const epoch = Math.floor(nowMs / 1000)
  const result = (await otplib()).verifySync({ secret, token: code, epoch, period: TOTP_PERIOD, digits: DIGITS, epochTolerance: DRIFT_STEPS * TOTP_PERIOD })
  return result.valid ? Math.floor(epoch / TOTP_PERIOD) + result.delta : undefined
}
