/**
 * app.neuronLabels: the catalogue the service serves (src/evidence/catalogue.ts: published, user and
 * automatic labels, published > user > automatic) and the whole-model labelling job that writes its
 * automatic layer (src/evidence/label-job.ts: kinds neuron-labels and neuron-labels-shard on
 * app.jobs). The evidence service gets the served labels and the cached maximal texts. Labellings
 * left unfinished (a restart without Redis) are resubmitted when the server is ready, under their
 * ids; on close, running labelling work stops between neurons and is left to resume.
 */
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { LabelCatalogue, type MaxTextEvidence } from '../evidence/catalogue.js';
import { labelJobData, labelShardSizeOf, NeuronLabelJobs } from '../evidence/label-job.js';
import type { Submitted } from '../jobs/queue.js';

export interface NeuronLabels {
  catalogue: LabelCatalogue;
  jobs: NeuronLabelJobs;
  /** Queues the labelling of every neuron from `collection` (joins one already running). */
  submit(collection: string, owner: string): Promise<Submitted>;
}

declare module 'fastify' {
  interface FastifyInstance {
    neuronLabels: NeuronLabels;
  }
}

/** Who resubmits an unfinished labelling at start (an admin key may cancel it). */
const RESUMED_OWNER = 'service:resumed';

const neuronLabelsPlugin: FastifyPluginAsync<{ config: Config }> = async (app, { config }) => {
  const catalogue = new LabelCatalogue(config.dataDir, app.clip, app.attribution.catalogue);
  const maxText = async (neuron: number): Promise<MaxTextEvidence | null> => {
    const best = await app.jobs.bestForNeuron(neuron).catch(() => undefined);
    return best ? { text: best.result.text, score: best.result.score, steps: best.result.steps } : null;
  };
  const jobs = new NeuronLabelJobs({
    evidence: app.evidence,
    collections: app.collections,
    words: app.words,
    catalogue,
    model: app.clip,
    maxText,
    shardSize: labelShardSizeOf(),
    log: app.log,
  });
  app.jobs.registry.register('neuron-labels', jobs.jobProcessor);
  app.jobs.registry.register('neuron-labels-shard', jobs.shardProcessor);
  app.jobs.whenStopped('neuron-labels', (view) => jobs.stopped(view.id));
  app.evidence.attach({ served: catalogue, maxText });
  app.decorate('neuronLabels', {
    catalogue,
    jobs,
    submit: (collection, owner) => app.jobs.submitJob(labelJobData(collection), owner),
  });
  app.addHook('onReady', async () => {
    for (const plan of await jobs.unfinished()) {
      await app.jobs.submitJob(labelJobData(plan.collection), RESUMED_OWNER, plan.jobId);
      app.log.info({ job: plan.jobId, collection: plan.collection }, 'neuron labelling resumed');
    }
  });
  app.addHook('preClose', async () => jobs.stop());
};

export default fp(neuronLabelsPlugin, {
  name: 'neuron-labels',
  dependencies: ['model', 'attribution', 'words', 'jobs', 'collections', 'evidence'],
});
