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
      tags: [
        { name: 'service', description: 'Health and model description' },
        { name: 'clip', description: 'Tokens, embeddings, zero-shot classification, word rasters' },
        { name: 'attribution', description: 'Text → neuron attribution, image contributions, interventions' },
        { name: 'neurons', description: 'The neuron catalogue' },
      ],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  await app.register(multipart, {
    limits: { ...MULTIPART_LIMITS },
  });
};

export default fp(externalPlugin, { name: 'external', dependencies: [] });
