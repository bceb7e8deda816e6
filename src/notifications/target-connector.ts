import { isIP, type Socket } from 'node:net';
import { buildConnector } from 'undici';
import { bareHost, DestinationNotAllowedError, isDisallowedAddress, resolveAllowed, type Lookup } from './ssrf-guard.ts';

type Connector = buildConnector.connector;

export interface TargetConnector {
  connect: Connector;
  /** True while a connection of `origin` (scheme://host[:port], as URL.origin spells it) is open to a non-public address. */
  reachesPrivate(origin: string): boolean;
}

/**
 * The delivery pool's connector. With private networks disallowed it connects to the very address it checked, so
 * DNS cannot change between the check and the connection (no rebinding window), and checks the connected peer
 * again with the same rule; TLS still verifies the certificate for the host name. With private networks allowed
 * (development) it refuses nothing but counts, per origin, the open connections to a non-public address, so an
 * attempt answered over one can be marked.
 */
export function createTargetConnector(timeoutMs: number, allowPrivateNetworks: boolean, lookup?: Lookup): TargetConnector {
  const base = buildConnector({ timeout: timeoutMs });
  const privateOpen = new Map<string, number>();

  function accept(options: buildConnector.Options, socket: Socket, callback: buildConnector.Callback): void {
    const peer = socket.remoteAddress;
    if (peer !== undefined && !isDisallowedAddress(peer)) return callback(null, socket);
    if (!allowPrivateNetworks) {
      socket.destroy();
      return callback(new DestinationNotAllowedError(options.hostname, peer), null);
    }
    const origin = `${options.protocol}//${options.host ?? options.hostname}`;
    privateOpen.set(origin, (privateOpen.get(origin) ?? 0) + 1);
    socket.once('close', () => {
      const left = (privateOpen.get(origin) ?? 1) - 1;
      if (left > 0) privateOpen.set(origin, left);
      else privateOpen.delete(origin);
    });
    callback(null, socket);
  }

  const connect: Connector = (options, callback) => {
    const connected: buildConnector.Callback = (err, socket) => (err ? callback(err, null) : accept(options, socket!, callback));
    if (allowPrivateNetworks) return base(options, connected);
    resolveAllowed(options.hostname, lookup).then(
      ({ address }) =>
        base({ ...options, hostname: address, servername: options.servername ?? (isIP(bareHost(options.hostname)) ? undefined : options.hostname) }, connected),
      (err: Error) => callback(err, null),
    );
  };

  return { connect, reachesPrivate: (origin) => privateOpen.has(origin) };
}
