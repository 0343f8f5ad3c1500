/**
 * A bare Fastify server (no plugins, no hooks, the default JSON parser and serialiser): the floor of
 * the machine for bench/http.ts. GET /hello and POST /hello answer {"hello":"world"}.
 *
 *   node --import tsx bench/hello-server.ts PORT      (prints "listening" once it does)
 */
import Fastify from 'fastify';

const app = Fastify({ logger: false });
const reply = { hello: 'world' };
app.get('/hello', async () => reply);
app.post('/hello', async () => reply);
await app.listen({ port: Number(process.argv[2] ?? 0), host: '127.0.0.1' });
process.stdout.write('listening\n');
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
