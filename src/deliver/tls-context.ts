import tls from 'node:tls';

const contexts = new Map<string, tls.SecureContext>();

/**
 * A TLS context trusting Node's bundled root CAs and `cas` (PEM: delivery.tls.ca,
 * delivery.mx.mtaSts.ca), built once per distinct set: building one costs
 * 20-24 ms of CPU (bench/README.md, "MX delivery"), far more than a handshake.
 */
export function contextWith(cas: readonly string[]): tls.SecureContext {
  const key = cas.join('\n');
  let context = contexts.get(key);
  if (!context) {
    context = tls.createSecureContext({ ca: [...tls.rootCertificates, ...cas], minVersion: 'TLSv1.2' });
    contexts.set(key, context);
  }
  return context;
}
