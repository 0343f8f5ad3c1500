/**
 * Jobs of every kind (maximal-text searches, collection builds and their shards, typographic attacks;
 * `kind` says which,
 * and the shapes of `progress` and `result` follow it): GET /v1/jobs/{id} (state, progress, result),
 * GET /v1/jobs/{id}/events (the same as Server-Sent Events: `progress` events as the job advances
 * (a search's best score, a build's images), then one `completed`, `failed`,
 * `cancelled` or `lost` event (the job's Redis data is gone, or Redis stayed unreachable), then the
 * stream closes; a finished job sends its final event at once) and DELETE /v1/jobs/{id} (cancel:
 * detaches the caller from the job; the job stops at once when no submitter is left, or when an
 * admin key cancels it: its state is frozen as at the acknowledgement and nothing is stored).
 * While Redis is unreachable the routes answer 503 with Retry-After at once.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { notFound, RetryLaterError } from '../errors.js';
import { isTerminal } from '../jobs/queue.js';
import type { JobView } from '../jobs/types.js';
import { withErrors } from './schemas.js';
import { MaxTextResultSchema } from './search.js';
import { AttackProgressSchema, AttackResponse } from './typographic.js';
import { LabelProgressSchema, LabelResultSchema, LabelShardProgressSchema } from './neurons.js';
import { withAllowed } from './validation.js';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) =>
  Type.Union([schema, Type.Null()]);

const SearchProgressSchema = Type.Object(
  {
    steps: Type.Integer(),
    totalSteps: Type.Integer(),
    evaluations: Type.Integer(),
    bestScore: Nullable(Type.Number()),
    bestText: Nullable(Type.String()),
  },
  { title: 'SearchProgress', description: 'A maximal-text search (kind max-text)' },
);

const BuildProgressSchema = Type.Object(
  {
    collection: Type.String(),
    done: Type.Integer({
      description: 'Uploads taken (indexed, duplicate or skipped), with shards in flight',
    }),
    total: Type.Integer({ description: 'Uploads the build knows of (uploads sent meanwhile join it)' }),
    indexed: Type.Integer({
      description: 'Images of the collection indexed and served (complete shards only)',
    }),
    skipped: Type.Array(Type.Object({ name: Type.String(), reason: Type.String() }), {
      description: 'Uploads that are not images, and why (the first 100)',
    }),
    duplicates: Type.Integer({ description: 'Uploads whose bytes were already in the collection' }),
    imagesPerSecond: Nullable(
      Type.Number({ description: 'Uploads per second since the build (or its resumption) started' }),
    ),
    shards: Type.Object({
      total: Type.Integer(),
      committed: Type.Integer({ description: 'Shards indexed (a contiguous prefix of the uploads)' }),
      running: Type.Integer({ description: 'Shards being computed now, by any worker' }),
    }),
  },
  { title: 'BuildProgress', description: 'A collection build (kind collection-build)' },
);

const ShardProgressSchema = Type.Object(
  {
    collection: Type.String(),
    build: Type.String({ description: 'The build job of this shard' }),
    shard: Type.Integer(),
    done: Type.Integer(),
    total: Type.Integer(),
  },
  { title: 'ShardProgress', description: 'One shard of a collection build (kind collection-shard)' },
);

const BuildResultSchema = Type.Object(
  {
    collection: Type.String(),
    images: Type.Integer({ description: 'Images of the collection indexed when the build ended' }),
    done: Type.Integer({ description: 'Uploads the build took' }),
    skipped: Type.Integer(),
    duplicates: Type.Integer(),
    joined: Type.Optional(
      Type.String({ description: 'The build of the collection that was running, which this one joined' }),
    ),
    workers: Type.Array(Type.String(), { description: 'Processes that computed shards (pid@host)' }),
  },
  { title: 'BuildResult' },
);

const ShardResultSchema = Type.Object(
  {
    computed: Type.Boolean({ description: 'False: the shard was taken, done or dropped elsewhere' }),
    done: Type.Integer(),
  },
  { title: 'ShardResult' },
);

const JobSchema = Type.Object({
  id: Type.String(),
  kind: Type.Union(
    [
      Type.Literal('max-text'),
      Type.Literal('collection-build'),
      Type.Literal('collection-shard'),
      Type.Literal('typographic-attack'),
      Type.Literal('neuron-labels'),
      Type.Literal('neuron-labels-shard'),
    ],
    {
      description: 'What the job does; progress and result have the shape of its kind',
    },
  ),
  state: Type.Union([
    Type.Literal('queued'),
    Type.Literal('running'),
    Type.Literal('completed'),
    Type.Literal('failed'),
    Type.Literal('cancelled'),
  ]),
  progress: Type.Union([
    SearchProgressSchema,
    BuildProgressSchema,
    ShardProgressSchema,
    // Before the attack's { done, total }, which the labelling's progress would also match (the
    // serializer takes the first schema that fits and drops the other fields).
    LabelProgressSchema,
    LabelShardProgressSchema,
    AttackProgressSchema,
  ]),
  result: Type.Optional(
    Type.Union([
      MaxTextResultSchema,
      BuildResultSchema,
      ShardResultSchema,
      AttackResponse,
      LabelResultSchema,
    ]),
  ),
  error: Type.Optional(Type.String()),
  cached: Type.Optional(Type.Boolean()),
  subscribers: Type.Optional(
    Type.Integer({
      description: 'Clients following the job: those that submitted it (identical requests share one job)',
    }),
  ),
});

const CancelledSchema = Type.Object({
  ...JobSchema.properties,
  stopped: Type.Boolean({ description: 'True: the job stopped (no submitter left, or an admin key)' }),
  detached: Type.Boolean({
    description: 'True: you no longer follow the job; when others still do, it runs on for them',
  }),
});

const JobParams = Type.Object({
  id: withAllowed(
    Type.String({ minLength: 1, maxLength: 200, pattern: '^[A-Za-z0-9-]+$' }),
    'job id must be 1 to 200 letters, digits and hyphens',
  ),
});

/** How often the event stream reads the job's state. */
const EVENT_POLL_MS = 150;

function sse(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

const routes: FastifyPluginAsyncTypebox<{ heartbeatMs?: number }> = async (app, { heartbeatMs = 0 }) => {
  const mustGet = async (id: string): Promise<JobView> => {
    const view = await app.jobs.get(id);
    if (!view) throw notFound(`job ${id} not found`);
    return view;
  };

  app.get(
    '/v1/jobs/:id',
    {
      schema: {
        tags: ['jobs'],
        summary: 'A job (a search, or a collection build): state, progress and result',
        params: JobParams,
        response: withErrors({ 200: JobSchema }, [400, 404, 503]),
      },
    },
    async (request) => mustGet(request.params.id),
  );

  app.delete(
    '/v1/jobs/:id',
    {
      schema: {
        tags: ['jobs'],
        summary:
          'Cancel a job you submitted: you are detached, and the job stops when no submitter is left (an admin key stops any job); a collection build is cancelled by its collection’s owner: what it indexed stays, the uploads not yet indexed are dropped; a finished job is returned unchanged',
        params: JobParams,
        response: withErrors({ 200: CancelledSchema }, [400, 403, 404, 503]),
      },
    },
    async (request) => {
      const cancelled = await app.jobs.cancel(request.params.id, app.jobClient(request));
      if (!cancelled) throw notFound(`job ${request.params.id} not found`);
      return { ...cancelled.view, stopped: cancelled.stopped, detached: cancelled.detached };
    },
  );

  app.get(
    '/v1/jobs/:id/events',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Follow a job as Server-Sent Events (progress…, then completed, failed, cancelled or lost)',
        params: JobParams,
        produces: ['text/event-stream'],
        response: withErrors({ 200: Type.String({ description: 'text/event-stream' }) }, [400, 404, 503]),
      },
    },
    async (request, reply) => {
      await mustGet(request.params.id);
      reply.hijack();
      const raw = reply.raw;
      request.raw.socket.setTimeout(0);
      // The headers the hooks gave the reply (CORS, security, rate limit) go with the hijacked stream:
      // a dashboard on another origin reads it through EventSource only with CORS's.
      raw.writeHead(200, {
        ...(reply.getHeaders() as OutgoingHttpHeaders),
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      const closed = new AbortController();
      raw.on('close', () => closed.abort());
      // A comment line now and then: a job can wait in the queue for minutes without news, and
      // proxies close a stream that stays silent (nginx after 60 s by default).
      const heartbeat =
        heartbeatMs > 0
          ? setInterval(() => {
              if (!closed.signal.aborted) raw.write(': keep-alive\n\n');
            }, heartbeatMs)
          : undefined;
      const send = (view: JobView) => {
        if (closed.signal.aborted) return;
        if (isTerminal(view)) raw.write(sse(view.state, view));
        else
          raw.write(sse('progress', { id: view.id, kind: view.kind, state: view.state, ...view.progress }));
      };
      try {
        const last = await app.jobs.watch(request.params.id, send, closed.signal, EVENT_POLL_MS);
        if (!last && !closed.signal.aborted) {
          raw.write(
            sse('lost', { id: request.params.id, error: 'the job is gone (its Redis data was lost)' }),
          );
        }
      } catch (error) {
        if (error instanceof RetryLaterError) {
          request.log.warn({ job: request.params.id }, 'job event stream lost: the job store is unreachable');
          if (!closed.signal.aborted) {
            raw.write(
              sse('lost', { id: request.params.id, error: `${error.message} (the job's state is unknown)` }),
            );
          }
        } else {
          request.log.error({ err: error }, 'job event stream failed');
          if (!closed.signal.aborted) raw.write(sse('failed', { error: 'Internal Server Error' }));
        }
      } finally {
        clearInterval(heartbeat);
      }
      raw.end();
    },
  );
};

export default routes;
