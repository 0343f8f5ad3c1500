/**
 * The thread side of a WorkerPool (worker-pool.ts): answers each request with the handler's value,
 * or with the error it threw (its HTTP status kept, 500 for anything that is not an HttpError).
 * Requests are handled one at a time, in the order they came: a request that releases what others
 * use (an onnxruntime session, say) never overtakes them.
 */
import { parentPort, type TransferListItem } from 'node:worker_threads';
import { inOrder } from './in-process.js';

export interface Envelope<Request> {
  id: number;
  request: Request;
}

export interface Reply<Response> {
  id: number;
  value?: Response;
  error?: { statusCode: number; message: string };
}

export function serveRequests<Request, Response>(
  handler: (request: Request) => Response | Promise<Response>,
  /** Buffers of the answer to move instead of copy. */
  transferOf: (response: Response) => TransferListItem[] = () => [],
): void {
  const port = parentPort;
  if (!port) throw new Error('serveRequests runs in a worker thread');
  const answer = async ({ id, request }: Envelope<Request>) => {
    let reply: Reply<Response>;
    let transfer: TransferListItem[] = [];
    try {
      const value = await handler(request);
      reply = { id, value };
      transfer = transferOf(value);
    } catch (error) {
      const statusCode = (error as { statusCode?: unknown }).statusCode;
      reply = {
        id,
        error: {
          statusCode: typeof statusCode === 'number' ? statusCode : 500,
          message: error instanceof Error ? error.message : String(error),
        },
      };
    }
    port.postMessage(reply, transfer);
  };
  const next = inOrder();
  port.on('message', (envelope: Envelope<Request>) => void next(() => answer(envelope)));
}
