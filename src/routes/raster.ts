/**
 * GET /v1/raster?text=…: the PNG the model sees for a word or phrase (see src/clip/raster.ts).
 */
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { rasterizePng } from '../clip/raster.js';
import { withErrors } from './schemas.js';

const RasterQuery = Type.Object(
  { text: Type.String({ minLength: 1, maxLength: 200, description: 'The word or phrase to draw' }) },
  { additionalProperties: false },
);

const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/v1/raster',
    {
      schema: {
        tags: ['clip'],
        summary: 'The image of a word as the model reads it',
        querystring: RasterQuery,
        produces: ['image/png'],
        response: withErrors({
          200: Type.Unsafe<Buffer>({ type: 'string', format: 'binary', description: 'PNG, S×S pixels' }),
        }),
      },
    },
    async (request, reply) => {
      const png = await rasterizePng(request.query.text, app.clip.imageSize);
      return reply.type('image/png').header('cache-control', 'public, max-age=86400').send(png);
    },
  );
};

export default routes;
