/**
 * The thread of collection retrieval (retrieval.ts): holds recently searched collections'
 * embeddings (embedding-index.ts) and scores queries against them, off the event loop.
 */
import { serveRequests } from '../threads/serve.js';
import { EmbeddingIndex } from './embedding-index.js';
import type { RetrievalRequest, RetrievalAnswer } from './retrieval.js';

let index: EmbeddingIndex | undefined;

serveRequests<RetrievalRequest, RetrievalAnswer>(
  async (request) => {
    if (request.kind === 'setup') {
      await index?.close();
      index = new EmbeddingIndex(request.memoryBytes, request.engine);
      return { kind: 'ready' };
    }
    if (!index) throw new Error('the retrieval thread was not set up');
    return { kind: 'scores', ...(await index.score(request.request)) };
  },
  (answer) =>
    answer.kind === 'scores' ? [answer.ids.buffer as ArrayBuffer, answer.scores.buffer as ArrayBuffer] : [],
);
