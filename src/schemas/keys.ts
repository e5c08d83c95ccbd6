import { Type } from 'typebox'

export const Jwks = Type.Object({
  keys: Type.Array(Type.Object({
    kty: Type.Literal('OKP'),
    crv: Type.Literal('Ed25519'),
    x: Type.String(),
    kid: Type.String(),
    alg: Type.Literal('EdDSA'),
    use: Type.Literal('sig'),
  })),
}, {
  description: 'JSON Web Key Set (RFC 7517); cacheable for 5 minutes',
  examples: [{ keys: [{ kty: 'OKP', crv: 'Ed25519', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo', kid: '3hMomz4urc-2v6mehopKxiB_p12FZPppOozYt4H2HLs', alg: 'EdDSA', use: 'sig' }] }],
})
