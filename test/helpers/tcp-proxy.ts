import { createServer, connect, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  /** Local port the proxy listens on (127.0.0.1). */
  port: number;
  /** `url` with its host and port replaced by the proxy's. */
  urlThrough(url: string): string;
  /** Destroys every current connection (both sides) and refuses new ones until `restore()`. */
  cut(): void;
  /** A silent partition: nothing flows any more, but no connection is closed or reset; new ones hang too. */
  blackhole(): void;
  /** Lets new connections through again (connections destroyed by `cut()` stay gone). */
  restore(): void;
  readonly isCut: boolean;
  /** Connections forwarded / refused while cut / destroyed by `cut()`, since the start. */
  stats(): { accepted: number; refused: number; severed: number; open: number };
  close(): Promise<void>;
}

/**
 * A TCP proxy 127.0.0.1:<random> → `target`, written with node:net, to simulate a storage outage between the
 * service and its database. While cut, an incoming connection is accepted and reset at once (the port stays
 * ours, the client sees ECONNRESET / "connection lost" immediately instead of waiting for a timeout).
 */
export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const pairs = new Set<{ client: Socket; upstream: Socket }>();
  const held = new Set<Socket>();
  let cut = false;
  let silent = false;
  const counts = { accepted: 0, refused: 0, severed: 0 };

  const sever = (socket: Socket) => {
    if (socket.destroyed) return;
    // RST rather than FIN: the peer learns at once, and nothing buffered is delivered after the cut.
    if (typeof socket.resetAndDestroy === 'function' && socket.readyState !== 'opening') socket.resetAndDestroy();
    else socket.destroy();
  };

  const server: Server = createServer((client) => {
    client.on('error', () => undefined);
    if (cut) {
      counts.refused++;
      sever(client);
      return;
    }
    if (silent) {
      held.add(client); // accepted, never answered: like packets dropped on the floor
      return;
    }
    counts.accepted++;
    const upstream = connect({ host: target.host, port: target.port });
    upstream.on('error', () => undefined);
    const pair = { client, upstream };
    pairs.add(pair);
    const drop = () => {
      if (!pairs.delete(pair)) return;
      client.destroy();
      upstream.destroy();
    };
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', drop);
    upstream.on('close', drop);
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;

  return {
    port,
    urlThrough(url: string) {
      const u = new URL(url);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    cut() {
      cut = true;
      for (const pair of [...pairs]) {
        pairs.delete(pair);
        counts.severed++;
        pair.client.unpipe();
        pair.upstream.unpipe();
        sever(pair.client);
        sever(pair.upstream);
      }
    },
    blackhole() {
      silent = true;
      for (const pair of pairs) {
        pair.client.unpipe();
        pair.upstream.unpipe();
        pair.client.pause();
        pair.upstream.pause();
      }
    },
    restore() {
      cut = false;
      if (silent) {
        silent = false;
        // The partition heals: stuck sockets are dropped so they cannot deliver stale bytes later.
        for (const pair of [...pairs]) {
          pairs.delete(pair);
          pair.client.destroy();
          pair.upstream.destroy();
        }
        for (const socket of held) socket.destroy();
        held.clear();
      }
    },
    get isCut() {
      return cut;
    },
    stats: () => ({ ...counts, open: pairs.size }),
    close() {
      cut = true;
      for (const pair of pairs) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
      pairs.clear();
      for (const socket of held) socket.destroy();
      held.clear();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
