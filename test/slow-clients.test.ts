/**
 * Slow clients (issue 21, failure 8) against the real server process (src/bin/server.ts on the
 * embedded model): sockets that send their headers, or their body, a byte at a time are closed once
 * HEADERS_TIMEOUT_MS (or BODY_TIMEOUT_MS) has passed, not held for the request timeout, and the
 * service answers /health all along; connections past MAX_CONNECTIONS are closed at once.
 */
import net from 'node:net';
import t from 'tap';
import { sleep, startServer, type ServerProcess } from '../bench/lib/processes.js';
import { loadConfig } from '../src/config.js';

const HEADERS_TIMEOUT_MS = 1000;
const BODY_TIMEOUT_MS = 2000;

interface Slow {
  openedAt: number;
  closedAt?: number;
  received: string;
  socket: net.Socket;
}

/** A socket that sends `head` and then one byte of `drip` every 100 ms, for as long as it is open. */
function slowSocket(port: number, head: string, drip: string): Promise<Slow> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const slow: Slow = { openedAt: Date.now(), received: '', socket };
    let timer: NodeJS.Timeout | undefined;
    socket.on('data', (chunk: Buffer) => (slow.received += chunk.toString()));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      slow.closedAt = Date.now();
      clearInterval(timer);
    });
    socket.once('connect', () => {
      slow.openedAt = Date.now();
      socket.write(head);
      let i = 0;
      timer = setInterval(() => {
        if (!socket.destroyed) socket.write(drip[i++ % drip.length]);
      }, 100);
      resolve(slow);
    });
    socket.once('error', reject);
  });
}

async function health(server: ServerProcess): Promise<number> {
  try {
    return (await fetch(`${server.url}/health`, { signal: AbortSignal.timeout(20_000) })).status;
  } catch {
    return 0;
  }
}

async function allClosed(sockets: Slow[], ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (sockets.some((s) => s.closedAt === undefined)) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

t.test('slow headers and slow bodies are cut off; /health keeps answering', async (t) => {
  const server = await startServer({
    HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
    BODY_TIMEOUT_MS: String(BODY_TIMEOUT_MS),
    REDIS_URL: '',
    WARM_DEFAULT_FIT: 'false',
    WORKER_IN_PROCESS: 'false',
  });
  t.teardown(() => server.stop());

  const headers = await Promise.all(
    Array.from({ length: 200 }, () =>
      slowSocket(server.port, 'GET /health HTTP/1.1\r\nHost: x\r\n', 'X-Slow: abc\r\n'),
    ),
  );
  const body = await Promise.all(
    Array.from({ length: 50 }, () =>
      slowSocket(
        server.port,
        'POST /v1/tokenize HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n',
        '{"texts": ["a slow body"',
      ),
    ),
  );
  const during: number[] = [];
  for (let i = 0; i < 5; i++) {
    during.push(await health(server));
    await sleep(100);
  }
  t.same(during, [200, 200, 200, 200, 200], '/health answers while 250 slow sockets are open');

  // The old behaviour held them for REQUEST_TIMEOUT_MS (120 s); this deadline only ends a failing run.
  t.ok(await allClosed(headers, 30_000), 'every slow-header socket is closed');
  t.ok(await allClosed(body, 30_000), 'every slow-body socket is closed');
  const held = (sockets: Slow[]) => sockets.map((s) => s.closedAt! - s.openedAt);
  t.ok(
    held(headers).every((ms) => ms >= HEADERS_TIMEOUT_MS - 50),
    `slow headers held at least HEADERS_TIMEOUT_MS (shortest ${Math.min(...held(headers))} ms)`,
  );
  t.ok(
    held(body).every((ms) => ms >= BODY_TIMEOUT_MS - 50),
    `slow bodies held at least BODY_TIMEOUT_MS (shortest ${Math.min(...held(body))} ms)`,
  );
  t.ok(
    [...headers, ...body].every((s) => s.received === '' || /^HTTP\/1\.1 408/.test(s.received)),
    'each is closed bare or with 408 Request Timeout',
  );
  t.equal(await health(server), 200, '/health answers afterwards');
});

t.test('connections past MAX_CONNECTIONS are closed at once', async (t) => {
  const server = await startServer({
    HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
    BODY_TIMEOUT_MS: String(BODY_TIMEOUT_MS),
    MAX_CONNECTIONS: '20',
    REDIS_URL: '',
    WARM_DEFAULT_FIT: 'false',
    WORKER_IN_PROCESS: 'false',
  });
  t.teardown(() => server.stop());
  // The health check of startServer has returned its connection; open 30 slow ones.
  await sleep(300);
  const sockets: Slow[] = [];
  for (let i = 0; i < 30; i++) {
    sockets.push(await slowSocket(server.port, 'GET /health HTTP/1.1\r\nHost: x\r\n', 'X-Slow: abc\r\n'));
  }
  await sleep(300);
  const closedEarly = sockets.filter(
    (s) => s.closedAt !== undefined && s.closedAt - s.openedAt < HEADERS_TIMEOUT_MS,
  ).length;
  // 10 past the cap; one more when the start-up health check's keep-alive connection is still open.
  t.ok(closedEarly >= 10 && closedEarly <= 11, `the ones past the cap are closed at once (${closedEarly})`);
  t.ok(await allClosed(sockets, 30_000), 'the others are cut off by the header timeout');
  const heldOn = sockets.filter((s) => s.closedAt! - s.openedAt >= HEADERS_TIMEOUT_MS - 50).length;
  t.equal(heldOn, 30 - closedEarly, `the ${heldOn} within the cap were held until the header timeout`);
  t.equal(await health(server), 200, 'and the service answers again');
});

t.test('the timeouts and the cap are configuration, checked at start', async (t) => {
  const defaults = loadConfig({});
  t.match(defaults, {
    headersTimeoutMs: 10_000,
    bodyTimeoutMs: 30_000,
    keepAliveTimeoutMs: 5_000,
    connectionTimeoutMs: 130_000,
    maxConnections: 1024,
  });
  t.ok(
    defaults.bodyTimeoutMs < defaults.requestTimeoutMs,
    'receiving a request is bounded well below REQUEST_TIMEOUT_MS',
  );
  t.equal(
    loadConfig({ REQUEST_TIMEOUT_MS: '0' }).connectionTimeoutMs,
    0,
    'no request timeout: no idle limit by default',
  );
  t.equal(loadConfig({ CONNECTION_TIMEOUT_MS: '5000' }).connectionTimeoutMs, 5000);
  t.throws(
    () => loadConfig({ HEADERS_TIMEOUT_MS: '5000', BODY_TIMEOUT_MS: '1000' }),
    /BODY_TIMEOUT_MS \(1000\).*at least HEADERS_TIMEOUT_MS \(5000\)/,
  );
  t.throws(() => loadConfig({ MAX_CONNECTIONS: '-1' }), /MAX_CONNECTIONS/);
});
