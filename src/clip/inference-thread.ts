/**
 * The thread that owns a model's onnxruntime sessions: a SessionHost (inference.ts) answering the
 * model's requests. onnxruntime-node runs a graph synchronously on the thread that calls it: here
 * that is this thread, so the service's event loop goes on while a batch runs.
 */
import { serveRequests } from '../threads/serve.js';
import { SessionHost, type InferenceRequest } from './inference.js';

const host = new SessionHost();
serveRequests(
  (request: InferenceRequest) => host.answer(request),
  (reply) =>
    reply.kind === 'ran'
      ? [reply.data, reply.chained].flatMap((data) => (data ? [data.buffer as ArrayBuffer] : []))
      : [],
);
