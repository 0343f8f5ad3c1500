/**
 * POST /v1/tokenize: CLIP's BPE ids for each text, with start and end tokens, unpadded.
 */
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { TEXT_BODY_BYTES } from '../limits.js';
import { Texts, withErrors } from './schemas.js';

const TokenizeBody = Type.Object({ texts: Texts }, { additionalProperties: false });

const TokenizeResponse = Type.Object({
  tokens: Type.Array(
    Type.Object({
      ids: Type.Array(Type.Integer()),
      truncated: Type.Boolean({ description: 'The text did not fit the context length' }),
    }),
  ),
});

const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/v1/tokenize',
    {
      bodyLimit: TEXT_BODY_BYTES,
      schema: {
        tags: ['clip'],
        summary: 'Tokenize texts with the model’s BPE',
        body: TokenizeBody,
        response: withErrors({ 200: TokenizeResponse }, [400, 413, 415]),
      },
    },
    async (request) => ({ tokens: request.body.texts.map((text) => app.clip.tokenizer.encode(text)) }),
  );
};

export default routes;
