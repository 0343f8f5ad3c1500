/**
 * The explorer: a header, an error banner and one view at a time, chosen by the URL's hash
 * (#/prompt, #/neuron/12, #/neurons, #/words, #/emotions, #/image, #/collections, #/attack).
 */
import './style.css';
import { api, apiKey, call, setApiKey } from './api';
import { clearError, showError } from './dom';
import type { View } from './views/view';
import { promptView } from './views/prompt';
import { neuronView } from './views/neuron';
import { neuronsView } from './views/neurons';
import { wordsView } from './views/words';
import { emotionsView } from './views/emotions';
import { imageView } from './views/image';
import { collectionsView } from './views/collections';
import { attackView } from './views/attack';

const views: Record<string, View> = {
  prompt: promptView,
  neuron: neuronView,
  neurons: neuronsView,
  words: wordsView,
  emotions: emotionsView,
  image: imageView,
  collections: collectionsView,
  attack: attackView,
};

let cleanup: (() => void) | void = undefined;

function route(): void {
  const [name = '', ...rest] = window.location.hash.replace(/^#\/?/, '').split('/');
  const key = name in views ? name : 'prompt';
  const argument = rest.length > 0 ? decodeURIComponent(rest.join('/')) : undefined;
  if (cleanup) cleanup();
  clearError();
  for (const link of document.querySelectorAll<HTMLAnchorElement>('nav a[data-view]')) {
    if (link.dataset.view === key) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const root = document.getElementById('view') as HTMLElement;
  root.replaceChildren();
  root.dataset.view = key;
  document.title = `${key[0].toUpperCase()}${key.slice(1)} · Multimodal neurons explorer`;
  cleanup = views[key](root, argument);
}

async function showModel(): Promise<void> {
  const model = await call(api.GET('/v1/model'));
  const line = document.getElementById('model') as HTMLParagraphElement;
  line.textContent = `${model.name} · ${model.neuronCount} neurons (${model.neuronLayer}) · ${model.executionProvider}`;
}

/** The API key control: a key given here goes with every call (see api.ts) and redraws the view. */
function keyControl(): void {
  const details = document.getElementById('key') as HTMLDetailsElement;
  const form = document.getElementById('key-form') as HTMLFormElement;
  const input = form.elements.namedItem('apikey') as HTMLInputElement;
  const mark = () => {
    details.dataset.set = apiKey() ? 'true' : 'false';
    (details.querySelector('summary') as HTMLElement).textContent = apiKey() ? 'API key ✓' : 'API key';
  };
  input.value = apiKey();
  mark();
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    setApiKey(input.value.trim());
    mark();
    details.open = false;
    route();
    showModel().catch(showError);
  });
}

keyControl();
document.getElementById('error-close')?.addEventListener('click', clearError);
window.addEventListener('hashchange', route);
route();
showModel().catch(showError);
