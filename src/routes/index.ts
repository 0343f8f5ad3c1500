/**
 * Every route of the service; each file is one resource and carries its own schemas.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { Config } from '../config.js';
import attribution from './attribution.js';
import classify from './classify.js';
import collections from './collections.js';
import embed from './embed.js';
import emotions from './emotions.js';
import jobs from './jobs.js';
import neuronEvidence from './neuron-evidence.js';
import neuronNeighbours from './neuron-neighbours.js';
import neurons from './neurons.js';
import raster from './raster.js';
import typographic from './typographic.js';
import interventions from './interventions.js';
import search from './search.js';
import service from './service.js';
import tokenize from './tokenize.js';
import words from './words.js';

const routes: FastifyPluginAsync<{ config: Config }> = async (app, { config }) => {
  await app.register(service);
  await app.register(tokenize);
  await app.register(embed);
  await app.register(classify);
  await app.register(raster);
  await app.register(attribution);
  await app.register(interventions);
  await app.register(typographic);
  await app.register(neurons);
  await app.register(words);
  await app.register(search);
  await app.register(jobs, { heartbeatMs: config.sseHeartbeatMs });
  await app.register(emotions);
  await app.register(collections);
  await app.register(neuronEvidence);
  await app.register(neuronNeighbours);
};

export default routes;
