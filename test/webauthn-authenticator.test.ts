import t from 'tap'
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type RegistrationResponseJSON,
  type WebAuthnCredential,
} from '@simplewebauthn/server'
import { isoBase64URL } from '@simplewebauthn/server/helpers'
import { COSE_ALGORITHM, editClientData, generateCredentialKey, readClientData, softAuthenticator, tamperSignature, type SoftAlgorithm } from './webauthn-authenticator.js'

const origin = 'http://localhost:3000'
const rpID = 'localhost'

const registrationOptions = (excludeCredentials: { id: string }[] = []) => generateRegistrationOptions({
  rpName: 'Auth API',
  rpID,
  userName: 'ada@example.com',
  supportedAlgorithmIDs: [-8, -7, -257],
  authenticatorSelection: { residentKey: 'required', userVerification: 'preferred' },
  attestationType: 'none',
  excludeCredentials,
})

const verifyRegistration = (response: RegistrationResponseJSON, expectedChallenge: string, more: { expectedOrigin?: string, expectedRPID?: string } = {}) =>
  verifyRegistrationResponse({ response, expectedChallenge, expectedOrigin: origin, expectedRPID: rpID, requireUserVerification: false, ...more })

const verifyAuthentication = (response: AuthenticationResponseJSON, expectedChallenge: string, credential: WebAuthnCredential, more: { expectedOrigin?: string, expectedRPID?: string } = {}) =>
  verifyAuthenticationResponse({ response, expectedChallenge, expectedOrigin: origin, expectedRPID: rpID, credential, requireUserVerification: false, ...more })

/** verified:false and a throw both count as a refusal */
async function refused (check: () => Promise<{ verified: boolean }>): Promise<string> {
  try {
    const result = await check()
    return result.verified ? 'accepted' : 'refused'
  } catch (error) {
    return `refused (${(error as Error).message})`
  }
}

for (const algorithm of ['ES256', 'Ed25519', 'RS256'] as SoftAlgorithm[]) {
  t.test(`${algorithm}: register and sign in, as @simplewebauthn/server verifies them`, async t => {
    const authenticator = softAuthenticator({ algorithm })
    const options = await registrationOptions()
    const registration = authenticator.register(options, { origin, userVerified: false })
    t.equal(registration.id, authenticator.credential().id)
    t.equal(registration.rawId, registration.id)
    t.same(registration.response.transports, ['internal'])
    t.equal(registration.response.publicKeyAlgorithm, COSE_ALGORITHM[algorithm])
    t.match(readClientData(registration), { type: 'webauthn.create', challenge: options.challenge, origin, crossOrigin: false })

    const verified = await verifyRegistration(registration, options.challenge)
    t.ok(verified.verified, 'registration verified')
    const info = verified.registrationInfo
    if (!info) throw new Error('no registrationInfo')
    t.equal(info.fmt, 'none')
    t.equal(info.userVerified, false, 'UV as asked')
    t.equal(info.credentialDeviceType, 'singleDevice')
    t.equal(info.credential.id, registration.id)
    t.equal(info.credential.counter, 0)
    t.same(Buffer.from(info.credential.publicKey), Buffer.from(authenticator.credential().cosePublicKey))
    const credential: WebAuthnCredential = { ...info.credential }

    let counter = credential.counter
    for (const userVerified of [true, false]) {
      const request = await generateAuthenticationOptions({ rpID, userVerification: 'preferred', allowCredentials: [] })
      const assertion = authenticator.authenticate(request, { origin, userVerified })
      t.equal(assertion.response.userHandle, options.user.id, 'the user handle of the registration')
      t.match(readClientData(assertion), { type: 'webauthn.get', challenge: request.challenge, origin })
      const result = await verifyAuthentication(assertion, request.challenge, credential)
      t.ok(result.verified, `sign-in verified (UV ${userVerified})`)
      t.equal(result.authenticationInfo.userVerified, userVerified)
      t.ok(result.authenticationInfo.newCounter > counter, 'the counter increases')
      counter = credential.counter = result.authenticationInfo.newCounter
    }

    const strict = await generateAuthenticationOptions({ rpID, userVerification: 'required' })
    t.match(await refused(() => verifyAuthenticationResponse({
      response: authenticator.authenticate(strict, { origin, userVerified: false }), expectedChallenge: strict.challenge, expectedOrigin: origin, expectedRPID: rpID, credential,
    })), /^refused/, 'without UV, refused where UV is required')
  })
}

t.test('refusals: origin, RP ID, challenge, type, signature, key, counter', async t => {
  const authenticator = softAuthenticator()
  const options = await registrationOptions()

  const other = await registrationOptions()
  t.match(await refused(() => verifyRegistration(authenticator.register(options, { origin }), other.challenge)), /^refused/, 'registration: another challenge')
  t.match(await refused(() => verifyRegistration(authenticator.register(options, { origin: 'https://evil.example' }), options.challenge)), /^refused/, 'registration: another origin')
  t.match(await refused(() => verifyRegistration(authenticator.register(options, { origin, rpId: 'evil.example' }), options.challenge)), /^refused/, 'registration: another RP ID')
  t.match(await refused(() => verifyRegistration(authenticator.register(options, { origin, type: 'webauthn.get' }), options.challenge)), /^refused/, 'registration: the type of a sign-in')
  const phished = authenticator.withOrigin(authenticator.register(options, { origin }), 'https://evil.example')
  t.equal(readClientData(phished).origin, 'https://evil.example')
  t.match(await refused(() => verifyRegistration(phished, options.challenge)), /^refused/, 'registration: withOrigin')

  const registration = authenticator.register(options, { origin, backedUp: true })
  t.same(authenticator.credentials.filter(c => c.rpId === rpID).map(c => c.id), [registration.id], 'one resident key per RP and user')
  const info = (await verifyRegistration(registration, options.challenge)).registrationInfo
  if (!info) throw new Error('not verified')
  t.equal(info.credentialDeviceType, 'multiDevice', 'backedUp sets BE and BS')
  t.equal(info.credentialBackedUp, true)
  const credential: WebAuthnCredential = { ...info.credential }

  const again = await registrationOptions([{ id: registration.id }])
  t.throws(() => authenticator.register(again, { origin }), /InvalidStateError/, 'excludeCredentials is honoured')
  const resent = authenticator.register(again, { origin, credentialId: registration.id })
  t.equal(resent.id, registration.id, 'credentialId re-sends a held credential')
  t.ok((await verifyRegistration(resent, again.challenge)).verified)

  const request = await generateAuthenticationOptions({ rpID, userVerification: 'preferred' })
  const sign = (ctx: Partial<Parameters<typeof authenticator.authenticate>[1]> = {}) => authenticator.authenticate(request, { origin, ...ctx })
  const check = (response: AuthenticationResponseJSON, more: { expectedOrigin?: string, expectedRPID?: string } = {}, challenge = request.challenge) =>
    refused(() => verifyAuthentication(response, challenge, credential, more))

  t.equal(await check(sign()), 'accepted')
  t.match(await check(sign({ origin: 'https://evil.example' })), /^refused/, 'another origin')
  const phishedAssertion = authenticator.withOrigin(sign(), 'https://evil.example')
  t.match(await check(phishedAssertion), /^refused \(Unexpected authentication response origin/, 'withOrigin: validly signed, refused for its origin')
  t.equal(await check(phishedAssertion, { expectedOrigin: 'https://evil.example' }), 'accepted', 'withOrigin re-signs consistently')
  t.match(await check(editClientData(sign(), { origin: 'https://evil.example' }), { expectedOrigin: 'https://evil.example' }), /^refused/, 'editClientData alone breaks the signature')
  t.match(await check(sign({ rpId: 'evil.example' })), /^refused/, 'another RP ID')
  t.match(await check(sign(), {}, (await generateAuthenticationOptions({ rpID })).challenge), /^refused/, 'another challenge')
  t.match(await check(sign({ challenge: isoBase64URL.fromUTF8String('forged') })), /^refused/, 'a forged challenge')
  t.match(await check(sign({ type: 'webauthn.create' })), /^refused/, 'the type of a registration')
  t.match(await check(tamperSignature(sign())), /^refused/, 'a tampered signature')
  t.match(await check(authenticator.resign(sign(), generateCredentialKey('ES256').privateKey)), /^refused/, 'signed by another key')
  t.equal(await check(authenticator.resign(sign())), 'accepted', 'resign with its own key')
  t.match(await check(sign({ userHandle: null })), 'accepted', 'userHandle: null sends none')
  t.notOk('userHandle' in sign({ userHandle: null }).response)

  credential.counter = authenticator.credential().counter
  const last = credential.counter
  const clone = authenticator.clone()
  t.equal(await check(sign()), 'accepted')
  t.equal(authenticator.credential().counter, last + 1, 'one more per use')
  credential.counter = last + 1
  t.match(await check(sign({ counter: last })), /^refused/, 'a counter that went backwards')
  t.match(await check(clone.authenticate(request, { origin })), /^refused/, 'a clone repeats a counter')
  t.equal(authenticator.credential().counter, last + 1, 'an explicit counter is not kept')
  t.equal(await check(sign()), 'accepted', 'the genuine authenticator goes on')

  t.throws(() => authenticator.authenticate({ ...request, allowCredentials: [{ id: 'AAAA', type: 'public-key' }] }, { origin }), /NotAllowedError/)
  t.throws(() => softAuthenticator().authenticate(request, { origin }), /no credential/)
  t.throws(() => softAuthenticator({ algorithm: 'RS256' }).register({ ...options, pubKeyCredParams: [{ type: 'public-key', alg: -7 }] }, { origin }), /NotSupportedError/)
})
