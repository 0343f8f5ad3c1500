/**
 * The service's plugins declare their name and the plugins they depend on (fastify-plugin's
 * metadata), so that registering one without what it needs fails at start with a message that
 * names the missing plugin, before the plugin itself runs.
 */
import t from 'tap';
import Fastify, { type FastifyPluginAsync } from 'fastify';
import { loadConfig } from '../src/config.js';
import attribution from '../src/plugins/attribution.js';
import cache from '../src/plugins/cache.js';
import emotions from '../src/plugins/emotions.js';
import explorer from '../src/plugins/explorer.js';
import external from '../src/plugins/external.js';
import jobs from '../src/plugins/jobs.js';
import metrics from '../src/plugins/metrics.js';
import model from '../src/plugins/model.js';
import security from '../src/plugins/security.js';
import words from '../src/plugins/words.js';

interface PluginMeta {
  name?: string;
  dependencies?: string[];
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const PLUGINS: Record<string, FastifyPluginAsync<any>> = {
  attribution,
  cache,
  emotions,
  explorer,
  external,
  jobs,
  metrics,
  model,
  security,
  words,
};

const meta = (plugin: object) =>
  (plugin as Record<symbol, PluginMeta | undefined>)[Symbol.for('plugin-meta')];

t.test('every plugin declares its name and dependencies', async (t) => {
  for (const [name, plugin] of Object.entries(PLUGINS)) {
    t.equal(meta(plugin)?.name, name, `${name}: its name`);
    t.ok(Array.isArray(meta(plugin)?.dependencies), `${name}: its dependencies`);
  }
  t.same(meta(emotions)?.dependencies, ['attribution', 'model', 'cache', 'words']);
  t.same(meta(model)?.dependencies, ['metrics', 'cache']);
});

t.test('a plugin registered without its dependency fails at start, naming it', async (t) => {
  const config = loadConfig({});
  for (const [name, plugin] of Object.entries(PLUGINS)) {
    const dependencies = meta(plugin)?.dependencies ?? [];
    if (dependencies.length === 0) continue;
    const app = Fastify({ logger: false });
    const missing = dependencies[0]; // checked in order: the first is named
    // The check runs before the plugin does: nothing is loaded, no thread started.
    void app.register(plugin, { config });
    await t.rejects(
      async () => void (await app.ready()),
      {
        code: 'FST_ERR_PLUGIN_DEPENDENCY_NOT_REGISTERED',
        message: `The dependency '${missing}' of plugin '${name}' is not registered`,
      },
      `${name} without ${missing}`,
    );
    await app.close();
  }
});

t.test('the emotions plugin beside other plugins, without attribution', async (t) => {
  const app = Fastify({ logger: false });
  await app.register(metrics);
  void app.register(emotions, { config: loadConfig({}) });
  await t.rejects(
    async () => void (await app.ready()),
    /^The dependency 'attribution' of plugin 'emotions' is not registered$/,
  );
  await app.close();
});
