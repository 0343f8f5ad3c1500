/**
 * Charts drawn with plain elements and SVG: diverging neuron bars (each bar a link to its neuron,
 * carrying `data-neuron`), score bars, a line of values and a scatter plot.
 */
import { fmt, h, svg } from './dom';

export interface NeuronValue {
  neuron: number;
  value: number;
  label?: string;
}

/** The largest magnitude among `values` (1 when there is none, so bars never divide by 0). */
export function scaleOf(values: readonly number[]): number {
  const max = Math.max(0, ...values.map((value) => Math.abs(value)));
  return max > 0 ? max : 1;
}

/**
 * Diverging bars: positive values grow right of the axis, negative ones left. Rows link to the
 * neuron's view. `scale` is the magnitude of a full half-bar (shared by charts that are compared).
 */
export function neuronBars(items: readonly NeuronValue[], scale = scaleOf(items.map((item) => item.value))) {
  const list = h('ol', { class: 'bars' });
  for (const item of items) {
    const width = Math.min(50, (50 * Math.abs(item.value)) / scale);
    const sign = item.value >= 0 ? 'pos' : 'neg';
    const bar = h('span', { class: `bar ${sign}` });
    bar.style.width = `${width}%`;
    const name = item.label ? `${item.label}` : 'unlabelled';
    list.append(
      h(
        'li',
        null,
        h(
          'a',
          {
            class: 'bar-row',
            href: `#/neuron/${item.neuron}`,
            'data-neuron': item.neuron,
            title: `neuron ${item.neuron} (${name}): ${item.value}`,
          },
          h('span', { class: 'bar-label' }, h('b', null, `#${item.neuron}`), ' ', name),
          h('span', { class: 'bar-track' }, bar),
          h('span', { class: 'bar-value' }, fmt(item.value)),
        ),
      ),
    );
  }
  return list;
}

export interface NamedValue {
  name: string;
  value: number;
  note?: string;
}

/** One-sided bars for scores and probabilities (`max` is a full bar). */
export function scoreBars(items: readonly NamedValue[], max = scaleOf(items.map((item) => item.value))) {
  const list = h('ol', { class: 'scores' });
  for (const item of items) {
    const bar = h('span', { class: `bar ${item.value >= 0 ? 'pos' : 'neg'}` });
    bar.style.width = `${Math.min(100, (100 * Math.abs(item.value)) / max)}%`;
    list.append(
      h(
        'li',
        { class: 'score-row', title: `${item.name}: ${item.value}` },
        h('span', { class: 'bar-label' }, item.name, item.note ? h('small', null, ` ${item.note}`) : null),
        h('span', { class: 'score-track' }, bar),
        h('span', { class: 'bar-value' }, fmt(item.value)),
      ),
    );
  }
  return list;
}

/** A small line chart of `values` (e.g. the best score of a search step by step). */
export function line(values: readonly number[], label: string): SVGSVGElement {
  const width = 300;
  const height = 60;
  const chart = svg('svg', {
    class: 'line',
    viewBox: `0 0 ${width} ${height}`,
    preserveAspectRatio: 'none',
    role: 'img',
    'aria-label': label,
  });
  if (values.length === 0) return chart;
  const low = Math.min(...values);
  const high = Math.max(...values);
  const span = high - low || 1;
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  const points = values
    .map(
      (value, i) =>
        `${(i * step).toFixed(1)},${(height - 4 - ((value - low) / span) * (height - 8)).toFixed(1)}`,
    )
    .join(' ');
  chart.append(svg('polyline', { points, fill: 'none', 'vector-effect': 'non-scaling-stroke' }));
  return chart;
}

export interface Point {
  name: string;
  x: number;
  y: number;
  group: string;
  /** Drawn with its name next to it. */
  labelled?: boolean;
}

/** Colours for groups, in order of first appearance; readable on white. */
const PALETTE = [
  '#d62728',
  '#1f77b4',
  '#2ca02c',
  '#9467bd',
  '#ff7f0e',
  '#8c564b',
  '#e377c2',
  '#17becf',
  '#7f7f7f',
];

export function groupColours(groups: readonly string[]): Map<string, string> {
  const colours = new Map<string, string>();
  for (const group of groups)
    if (!colours.has(group)) colours.set(group, PALETTE[colours.size % PALETTE.length]);
  return colours;
}

/** A scatter plot; each point is a focusable button that calls `onSelect` with its name. */
export function scatter(
  points: readonly Point[],
  colours: Map<string, string>,
  onSelect: (name: string) => void,
): SVGSVGElement {
  const width = 640;
  const height = 420;
  const pad = 24;
  const xs = points.map((point) => point.x);
  const ys = points.map((point) => point.y);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const px = (x: number) => pad + ((x - x0) / (x1 - x0 || 1)) * (width - 2 * pad);
  const py = (y: number) => height - pad - ((y - y0) / (y1 - y0 || 1)) * (height - 2 * pad);
  const chart = svg('svg', {
    class: 'scatter',
    viewBox: `0 0 ${width} ${height}`,
    role: 'group',
    'aria-label': 'emotion atlas',
  });
  for (const point of points) {
    const select = () => onSelect(point.name);
    const dot = svg(
      'g',
      {
        class: 'point',
        tabindex: 0,
        role: 'button',
        'data-emotion': point.name,
        'aria-label': `${point.name} (${point.group})`,
        onclick: select,
        onkeydown: (event: Event) => {
          const key = (event as KeyboardEvent).key;
          if (key === 'Enter' || key === ' ') {
            event.preventDefault();
            select();
          }
        },
      },
      svg('title', null, `${point.name} — ${point.group}`),
      svg('circle', {
        cx: px(point.x).toFixed(1),
        cy: py(point.y).toFixed(1),
        r: point.labelled ? 7 : 5,
        fill: colours.get(point.group) ?? '#777',
      }),
      point.labelled
        ? svg('text', { x: (px(point.x) + 9).toFixed(1), y: (py(point.y) + 4).toFixed(1) }, point.name)
        : null,
    );
    chart.append(dot);
  }
  return chart;
}

/**
 * A histogram: one bar per bin (`edges` has one more entry than `counts`), heights proportional to
 * the counts. Each bar carries `data-count` and a tooltip; the axis is drawn below in HTML (text in
 * a stretched SVG would stretch with it). `marker` draws a vertical line at that value.
 */
export function histogram(
  edges: readonly number[],
  counts: readonly number[],
  options: { label: string; marker?: number; markerLabel?: string },
): HTMLElement {
  const width = 600;
  const height = 140;
  const low = edges[0] ?? 0;
  const high = edges[edges.length - 1] ?? 1;
  const span = high - low || 1;
  const x = (value: number) => ((value - low) / span) * width;
  const most = Math.max(1, ...counts);
  const chart = svg('svg', {
    class: 'histogram',
    viewBox: `0 0 ${width} ${height}`,
    preserveAspectRatio: 'none',
    role: 'img',
    'aria-label': options.label,
  });
  counts.forEach((count, i) => {
    const left = x(edges[i]);
    const right = x(edges[i + 1]);
    const tall = count === 0 ? 0 : Math.max(1.5, (count / most) * (height - 4));
    chart.append(
      svg(
        'rect',
        {
          x: (left + 0.5).toFixed(2),
          width: Math.max(0.5, right - left - 1).toFixed(2),
          y: (height - tall).toFixed(2),
          height: tall.toFixed(2),
          'data-count': count,
          'data-from': edges[i],
          'data-to': edges[i + 1],
        },
        svg('title', null, `${fmt(edges[i])} to ${fmt(edges[i + 1])}: ${count} images`),
      ),
    );
  });
  if (options.marker !== undefined && options.marker > low && options.marker < high) {
    const at = x(options.marker).toFixed(2);
    chart.append(
      svg('line', {
        class: 'marker',
        x1: at,
        x2: at,
        y1: 0,
        y2: height,
        'vector-effect': 'non-scaling-stroke',
      }),
    );
  }
  const axis = h(
    'div',
    { class: 'axis', 'aria-hidden': 'true' },
    h('span', null, fmt(low)),
    options.markerLabel ? h('span', { class: 'marker-label' }, options.markerLabel) : null,
    h('span', null, fmt(high)),
  );
  return h('figure', { class: 'histogram-figure' }, chart, axis);
}

export interface Bucket {
  from: number;
  to: number;
  count: number;
  shares: readonly { category: string; share: number }[];
}

/**
 * The article's conditional-probability plot: one column per activation bucket (lowest first), each
 * stacked by the share of each category among the bucket's images. The `shown` categories get
 * colours; the others are pooled as "other". Each column is an image with its shares in words.
 */
export function shareColumns(
  buckets: readonly Bucket[],
  shown: readonly string[],
  colours: Map<string, string>,
): HTMLElement {
  const OTHER = '#c9ced6';
  const columns = h('ol', { class: 'share-columns' });
  for (const bucket of buckets) {
    const parts: { name: string; share: number; colour: string }[] = [];
    let other = 0;
    for (const { category, share } of bucket.shares) {
      if (share <= 0) continue;
      if (shown.includes(category))
        parts.push({ name: category, share, colour: colours.get(category) ?? OTHER });
      else other += share;
    }
    parts.sort((a, b) => shown.indexOf(a.name) - shown.indexOf(b.name));
    if (other > 1e-9) parts.push({ name: 'other', share: other, colour: OTHER });
    const words = parts.map((part) => `${part.name} ${Math.round(100 * part.share)}%`).join(', ');
    const range = `${fmt(bucket.from)} to ${fmt(bucket.to)}`;
    const stack = h('div', {
      class: 'stack',
      role: 'img',
      'aria-label': `activation ${range}, ${bucket.count} images${bucket.count ? `: ${words}` : ''}`,
    });
    for (const part of parts) {
      const segment = h('span', {
        class: 'segment',
        title: `${part.name}: ${Math.round(100 * part.share)}% of ${bucket.count} images`,
        'data-category': part.name,
        'data-share': part.share,
      });
      segment.style.height = `${100 * part.share}%`;
      segment.style.background = part.colour;
      stack.append(segment);
    }
    columns.append(
      h(
        'li',
        { 'data-count': bucket.count },
        stack,
        h('span', { class: 'range' }, range),
        h('small', null, `${bucket.count} img`),
      ),
    );
  }
  const legend = h('ul', { class: 'legend' });
  for (const name of shown) {
    const swatch = h('span', { class: 'swatch' });
    swatch.style.background = colours.get(name) ?? OTHER;
    legend.append(h('li', null, swatch, name));
  }
  const swatch = h('span', { class: 'swatch' });
  swatch.style.background = OTHER;
  legend.append(h('li', null, swatch, 'other'));
  return h('div', { class: 'shares' }, columns, legend);
}
