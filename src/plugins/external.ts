/**
 * Third-party plugins: the OpenAPI document (generated from the routes' TypeBox schemas),
 * Swagger UI at /docs, and multipart uploads for the image routes.
 */
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import multipart from '@fastify/multipart';
import { MULTIPART_LIMITS } from '../limits.js';

export const OPENAPI_INFO = {
  title: 'multimodal-neurons',
  description:
    'The multimodal neurons of CLIP ResNet models (Goh et al., 2021), queryable over HTTP: ' +
    'text-to-neuron attribution, image-based word embeddings, emotion composition and maximal-text search.',
  version: '0.1.0',
};

const externalPlugin: FastifyPluginAsync = async (app) => {
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: OPENAPI_INFO,
      servers: [{ url: '/', description: 'The service that serves this document' }],
      // Every tag a route uses is declared here (test/openapi.test.ts checks it).
      tags: [
        { name: 'service', description: 'Health and model description' },
        { name: 'clip', description: 'Tokens, embeddings, zero-shot classification, word rasters' },
        { name: 'attribution', description: 'Text → neuron attribution, image contributions, interventions' },
        { name: 'neurons', description: 'The neuron catalogue' },
        {
          name: 'typographic',
          description: 'Typographic attacks on images: before/after, explanation, defence; Stroop stimuli',
        },
        { name: 'words', description: 'Image-based word embeddings: neighbours and arithmetic' },
        { name: 'search', description: 'Maximal-text search for a neuron or a direction' },
        { name: 'jobs', description: 'Search jobs: state, progress, events, cancellation' },
        { name: 'emotions', description: 'Emotion compositions, sparse concepts and the emotion atlas' },
        { name: 'admin', description: 'Administration (admin keys only): the word index' },
        {
          name: 'collections',
          description: 'Image collections, and the top images and distribution of a neuron in them',
        },
      ],
    },
  });
  // Every operation gets an operationId (generated clients name their methods after it), unless
  // its route gives one: the method and the path's words (see operationId below).
  app.addHook('onRoute', (route) => {
    if (!route.schema || route.schema.hide) return;
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (methods.length !== 1 || 'operationId' in route.schema) return;
    route.schema = {
      ...route.schema,
      operationId: operationId(methods[0]!, route.url),
    } as typeof route.schema;
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  await app.register(multipart, {
    limits: { ...MULTIPART_LIMITS },
  });
};

/**
 * `<method><Path words>`: GET /v1/neurons/{id}/top-words → getNeuronsByIdTopWords, POST
 * /v1/search/max-text → postSearchMaxText (the version prefix is left out).
 */
export function operationId(method: string, url: string): string {
  const words = url
    .split('/')
    .filter((part) => part !== '' && part !== 'v1')
    .flatMap((part) => {
      const param = /^:(.+)$/.exec(part) ?? /^\{(.+)\}$/.exec(part);
      return param ? ['by', param[1]!] : part.split(/[^A-Za-z0-9]+/);
    })
    .filter((word) => word !== '');
  const pascal = words.map((word) => word[0]!.toUpperCase() + word.slice(1)).join('');
  return method.toLowerCase() + pascal;
}

export default fp(externalPlugin, { name: 'external', dependencies: [] });
