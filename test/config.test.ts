import t from 'tap';
import path from 'node:path';
import { ConfigError, DEFAULT_MODEL_DIR, loadConfig } from '../src/config.js';

t.test('defaults', async (t) => {
  const config = loadConfig({});
  t.equal(config.port, 8080);
  t.equal(config.modelDir, DEFAULT_MODEL_DIR);
  t.same(config.executionProviders, ['cuda', 'cpu']);
  t.equal(config.redisUrl, undefined);
  t.equal(config.inferenceThread, true, 'onnxruntime off the event loop');
});

t.test('an empty variable counts as unset', async (t) => {
  const config = loadConfig({ REDIS_URL: '', PORT: ' ', MODEL_DIR: '' });
  t.equal(config.redisUrl, undefined);
  t.equal(config.port, 8080);
  t.equal(config.modelDir, DEFAULT_MODEL_DIR);
});

t.test('values are read and checked', async (t) => {
  const config = loadConfig({
    PORT: '9000',
    MODEL_DIR: 'some/dir',
    ORT_PROVIDERS: 'CPU',
    BATCH_MAX_SIZE: '8',
  });
  t.equal(config.port, 9000);
  t.equal(config.modelDir, path.resolve('some/dir'));
  t.same(config.executionProviders, ['cpu']);
  t.equal(config.maxBatch, 8);
  t.throws(() => loadConfig({ PORT: 'eighty' }), ConfigError);
  t.throws(() => loadConfig({ BATCH_MAX_SIZE: '0' }), /BATCH_MAX_SIZE must be an integer from 1/);
  t.throws(() => loadConfig({ ORT_PROVIDERS: 'cuda,tpu' }), /supported providers are cuda and cpu/);
  t.equal(loadConfig({ ORT_THREAD: 'False' }).inferenceThread, false);
  t.equal(loadConfig({ ORT_THREAD: '1' }).inferenceThread, true);
  t.throws(() => loadConfig({ ORT_THREAD: 'yes' }), /ORT_THREAD must be true or false, got "yes"/);
});
