// WebAuthn's JSON serialisation (base64url for binary fields) to and from the browser's
// `navigator.credentials` objects, for the ceremonies Janua's schema starts and finishes.

const dec = (s) => {
  const b = atob(s.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(s.length / 4) * 4, '='));
  return Uint8Array.from(b, (c) => c.charCodeAt(0)).buffer;
};
const enc = (buf) =>
  btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

/** Runs `navigator.credentials.get` with Janua's options; returns the assertion as JSON. */
export async function getAssertion(options) {
  const pk = options.publicKey;
  const publicKey = {
    ...pk,
    challenge: dec(pk.challenge),
    allowCredentials: (pk.allowCredentials || []).map((c) => ({ ...c, id: dec(c.id) })),
  };
  const cred = await navigator.credentials.get({ publicKey });
  const r = cred.response;
  return {
    id: cred.id,
    rawId: enc(cred.rawId),
    type: cred.type,
    response: {
      authenticatorData: enc(r.authenticatorData),
      clientDataJSON: enc(r.clientDataJSON),
      signature: enc(r.signature),
      userHandle: r.userHandle ? enc(r.userHandle) : null,
    },
    extensions: cred.getClientExtensionResults(),
  };
}

/** Runs `navigator.credentials.create` with Janua's options; returns the credential as JSON. */
export async function createCredential(options) {
  const pk = options.publicKey;
  const publicKey = {
    ...pk,
    challenge: dec(pk.challenge),
    user: { ...pk.user, id: dec(pk.user.id) },
    excludeCredentials: (pk.excludeCredentials || []).map((c) => ({ ...c, id: dec(c.id) })),
  };
  const cred = await navigator.credentials.create({ publicKey });
  const r = cred.response;
  return {
    id: cred.id,
    rawId: enc(cred.rawId),
    type: cred.type,
    response: {
      attestationObject: enc(r.attestationObject),
      clientDataJSON: enc(r.clientDataJSON),
      transports: r.getTransports ? r.getTransports() : undefined,
    },
    extensions: cred.getClientExtensionResults(),
  };
}
