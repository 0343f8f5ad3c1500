/**
 * Pictures of a collection's images, fetched through the API client (so an API key goes with them;
 * an <img src> could not send one) and shown from blob: URLs, which a view revokes when it is left:
 * thumbnails, and a neuron's heatmap over an image, shown on hover, focus or tap (`imageTile`).
 */
import { api, call, type Ok } from './api';
import { fmt, h, showError } from './dom';

export type Collection = Ok<'/v1/collections/{id}', 'get'>;

/** The collections, and the one to show first: `wanted` when it exists, else `probe`, else the first with images. */
export async function collectionsAndDefault(
  wanted?: string,
): Promise<{ collections: Collection[]; chosen: Collection | undefined }> {
  const { collections } = await call(api.GET('/v1/collections'));
  const chosen =
    collections.find((collection) => collection.id === wanted) ??
    collections.find((collection) => collection.id === 'probe' && collection.images > 0) ??
    collections.find((collection) => collection.images > 0) ??
    collections[0];
  return { collections, chosen };
}

/** A <select> of collections (id as value, name and image count as text). */
export function collectionSelect(collections: readonly Collection[], chosen: string | undefined) {
  const select = h('select', { name: 'collection' });
  for (const collection of collections) {
    const option = h(
      'option',
      { value: collection.id },
      `${collection.name} (${collection.images} images${collection.complete ? '' : ', building'})`,
    );
    option.selected = collection.id === chosen;
    select.append(option);
  }
  return select;
}

/** Blob URLs of one view: fetched once each, revoked together. */
export class Pictures {
  private readonly urls = new Map<string, Promise<{ url: string; max?: number }>>();
  private failures = 0;
  private disposed = false;

  /** An image's thumbnail (PNG) as an <img>, filled in when it arrives. */
  thumbnail(collection: string, imageId: number, alt: string, size = 64): HTMLImageElement {
    const image = h('img', { alt, width: size, height: size, class: 'thumb', 'data-image-id': imageId });
    this.load(`thumb:${collection}:${imageId}`, () =>
      api.GET('/v1/collections/{id}/images/{imageId}/thumbnail', {
        params: { path: { id: collection, imageId: String(imageId) } },
        parseAs: 'blob',
      }),
    )
      .then(({ url }) => {
        if (!this.disposed) image.src = url;
      })
      .catch((error: unknown) => this.fail(error));
    return image;
  }

  /** The neuron's map over an image of a collection (PNG) and the map's maximum (x-neuron-max). */
  heatmap(collection: string, imageId: number, neuron: number): Promise<{ url: string; max?: number }> {
    return this.load(`heat:${collection}:${imageId}:${neuron}`, () =>
      api.GET('/v1/collections/{id}/images/{imageId}/heatmap', {
        params: { path: { id: collection, imageId: String(imageId) }, query: { neuron: String(neuron) } },
        parseAs: 'blob',
      }),
    );
  }

  /** Any PNG the API answers (`request` is an openapi-fetch call with parseAs: 'blob'). */
  load(
    key: string,
    request: () => Promise<{ data?: Blob; error?: unknown; response: Response }>,
  ): Promise<{ url: string; max?: number }> {
    let entry = this.urls.get(key);
    if (!entry) {
      entry = (async () => {
        const result = await request();
        const blob = await call(Promise.resolve(result));
        const header = result.response.headers.get('x-neuron-max');
        return { url: URL.createObjectURL(blob), max: header === null ? undefined : Number(header) };
      })();
      this.urls.set(key, entry);
      entry.catch(() => this.urls.delete(key));
    }
    return entry;
  }

  /** The first failure of a view's pictures goes to the banner; the rest would repeat it. */
  fail(error: unknown): void {
    if (++this.failures === 1) showError(error);
  }

  dispose(): void {
    this.disposed = true;
    for (const entry of this.urls.values()) {
      entry.then(({ url }) => URL.revokeObjectURL(url)).catch(() => undefined);
    }
    this.urls.clear();
  }
}

export interface TileImage {
  imageId: number;
  name: string;
  category: string | null;
  value: number;
}

/**
 * An image of a collection with its value and category. With `neuron`, the thumbnail is a toggle
 * button that shows the neuron's heatmap over the image while hovered, and keeps it shown after a
 * tap, a click, Enter or Space (aria-pressed). The caption links to the image in the Image view.
 */
export function imageTile(
  pictures: Pictures,
  collection: string,
  image: TileImage,
  options: { neuron?: number; valueName?: string; size?: number } = {},
): HTMLElement {
  const { neuron, valueName = 'activation', size = 64 } = options;
  const what = `${image.name}${image.category ? ` (${image.category})` : ''}`;
  const thumbnail = pictures.thumbnail(collection, image.imageId, what, size);
  const caption = h(
    'figcaption',
    null,
    h(
      'a',
      {
        href: `#/image/${collection}/${image.imageId}${neuron !== undefined ? `/${neuron}` : ''}`,
        title: `${what}: ${valueName} ${image.value}`,
      },
      image.category ?? image.name,
    ),
    h('small', { class: 'value', 'data-value': image.value }, fmt(image.value)),
  );
  const figure = h(
    'figure',
    { class: 'tile', 'data-image-id': image.imageId, 'data-value': image.value },
    neuron === undefined
      ? thumbnail
      : heatToggle(pictures, collection, image.imageId, neuron, thumbnail, what, size),
    caption,
  );
  return figure;
}

function heatToggle(
  pictures: Pictures,
  collection: string,
  imageId: number,
  neuron: number,
  thumbnail: HTMLImageElement,
  what: string,
  size: number,
): HTMLButtonElement {
  const heat = h('img', {
    class: 'heat',
    alt: `neuron ${neuron}’s map over ${what}`,
    width: size,
    height: size,
    hidden: true,
  });
  const button = h(
    'button',
    {
      type: 'button',
      class: 'picture',
      'aria-pressed': 'false',
      'aria-label': `${what}: show neuron ${neuron}’s map over it`,
    },
    thumbnail,
    heat,
  );
  let hovered = false;
  const update = () => {
    const shown = hovered || button.getAttribute('aria-pressed') === 'true';
    if (!shown) {
      heat.hidden = true;
      return;
    }
    pictures
      .heatmap(collection, imageId, neuron)
      .then(({ url, max }) => {
        heat.src = url;
        if (max !== undefined) heat.dataset.max = String(max);
        const still = hovered || button.getAttribute('aria-pressed') === 'true';
        heat.hidden = !still;
      })
      .catch((error: unknown) => pictures.fail(error));
  };
  button.addEventListener('click', () => {
    button.setAttribute('aria-pressed', button.getAttribute('aria-pressed') === 'true' ? 'false' : 'true');
    update();
  });
  button.addEventListener('mouseenter', () => {
    hovered = true;
    update();
  });
  button.addEventListener('mouseleave', () => {
    hovered = false;
    update();
  });
  return button;
}
