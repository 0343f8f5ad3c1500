/**
 * GET /v1/raster?text=…&ink=…: the PNG the model sees for a word or phrase (see src/clip/raster.ts).
 */
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { rasterizePng } from '../clip/raster.js';
import { COLOUR_FORMS, parseColour } from '../typographic/colour.js';
import { withErrors } from './schemas.js';

const RasterQuery = Type.Object(
  {
    text: Type.String({ minLength: 1, maxLength: 200, description: 'The word or phrase to draw' }),
    ink: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 40,
        description: `The ink (default black; Stroop stimuli draw a colour word in another ink): ${COLOUR_FORMS}`,
      }),
    ),
  },
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
      const { text, ink } = request.query;
      const png = await rasterizePng(text, app.clip.imageSize, ink ? parseColour(ink, 'ink') : undefined);
      return reply.type('image/png').header('cache-control', 'public, max-age=86400').send(png);
    },
  );
};

export default routes;
