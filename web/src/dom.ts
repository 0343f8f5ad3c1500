/**
 * A few DOM helpers: elements from tag, attributes and children (text always goes in as text, never
 * as HTML), the error banner, and `action`, which runs one user action with a busy state and shows
 * its failure in the banner.
 */
import { ApiError } from './api';

type Child = Node | string | number | null | undefined | false;
type Handler = (event: Event) => void;
export type Attrs = Record<string, string | number | boolean | Handler | null | undefined>;

function apply(element: Element, attrs: Attrs | null, children: Child[]): void {
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === 'function') element.addEventListener(name.slice(2).toLowerCase(), value);
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
}

/** An HTML element. Attributes named on… are event listeners. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs | null = null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  apply(element, attrs, children);
  return element;
}

/** An SVG element. */
export function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Attrs | null = null,
  ...children: Child[]
): SVGElementTagNameMap[K] {
  const element = document.createElementNS('http://www.w3.org/2000/svg', tag);
  apply(element, attrs, children);
  return element;
}

/** A number for people: `digits` significant digits, no exponent for ordinary magnitudes. */
export function fmt(value: number, digits = 3): string {
  if (!Number.isFinite(value)) return String(value);
  if (value !== 0 && Math.abs(value) < 1e-3) return value.toExponential(1);
  return Number(value.toPrecision(digits)).toString();
}

const banner = () => document.getElementById('error') as HTMLDivElement;

/** Shows `message` in the error banner (the API's message for API errors). */
export function showError(error: unknown): void {
  let message = error instanceof Error ? error.message : String(error);
  if (error instanceof ApiError && error.status > 0) message += ` (HTTP ${error.status})`;
  if (error instanceof ApiError && error.status === 401) message += ' Give a key under “API key” above.';
  (document.getElementById('error-message') as HTMLParagraphElement).textContent = message;
  banner().hidden = false;
}

export function clearError(): void {
  banner().hidden = true;
}

/**
 * Runs one user action: clears the banner, marks `busy` (a form or section) as busy and disables
 * its buttons meanwhile, and shows any failure in the banner. Returns whether it succeeded.
 */
export async function action(busy: HTMLElement, run: () => Promise<void>): Promise<boolean> {
  clearError();
  busy.setAttribute('aria-busy', 'true');
  const buttons = [...busy.querySelectorAll('button')].filter((button) => !button.disabled);
  for (const button of buttons) button.disabled = true;
  try {
    await run();
    return true;
  } catch (error) {
    showError(error);
    return false;
  } finally {
    busy.removeAttribute('aria-busy');
    for (const button of buttons) button.disabled = false;
  }
}

/** A labelled form field. */
export function field(label: string, control: HTMLElement, hint?: string): HTMLLabelElement {
  return h(
    'label',
    { class: 'field' },
    h('span', null, label),
    control,
    hint ? h('small', null, hint) : null,
  );
}

/** Replaces the children of `parent`. */
export function fill(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  apply(parent, null, children);
}
