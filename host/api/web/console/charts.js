// The console's charts, drawn as SVG from data: a line over time (segment
// sizes) and estimates with their confidence intervals (uplift). Each
// chart is an image with a one-sentence summary for screen readers and the
// same values in a table that is visually hidden but read aloud; its
// marks carry their numbers as data attributes, so tests read the values
// drawn. No markup is parsed and no inline style is set (the page's CSP):
// colours and sizes come from classes in marketer.css.

import { h } from '/ui/shared/dom.js';

const SVG = 'http://www.w3.org/2000/svg';

/** A phone's screen: charts drawn narrower, so that their text stays legible. */
const compact = () => window.innerWidth < 560;

/** An SVG element with attributes (`class` included) and children. */
function s(tag, attributes, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null) continue;
    element.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** Round, readable tick values covering [low, high]: about `count` of them. */
export function ticks(low, high, count = 5) {
  if (!Number.isFinite(low) || !Number.isFinite(high)) return [];
  if (low === high) {
    const pad = low === 0 ? 1 : Math.abs(low) / 2;
    low -= pad;
    high += pad;
  }
  const raw = (high - low) / Math.max(1, count);
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((m) => m >= raw) || raw;
  const first = Math.floor(low / step) * step;
  const values = [];
  for (let v = first; v <= high + step * 1e-9; v += step) {
    values.push(Math.abs(v) < step * 1e-9 ? 0 : Number(v.toPrecision(12)));
  }
  if (values[values.length - 1] < high) values.push(Number((values[values.length - 1] + step).toPrecision(12)));
  return values;
}

function hiddenTable(caption, columns, rows) {
  // A table does not shrink to a pixel: its box is the one hidden.
  return h(
    'div',
    { class: 'mk-visually-hidden' },
    h(
      'table',
      {},
      h('caption', {}, caption),
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows.map((row) => h('tr', {}, row.map((cell, i) => h(i === 0 ? 'th' : 'td', i === 0 ? { scope: 'row' } : {}, cell))))),
    ),
  );
}

/**
 * A line chart of `points` ([{x, y}], x ascending), e.g. a segment's size
 * over time. `o`: {title, summary, xLabel, yLabel, formatX, formatY,
 * formatXTick}. Returns a <figure>.
 */
export function lineChart(points, o) {
  const width = compact() ? 360 : 640;
  const height = compact() ? 240 : 260;
  const m = { top: 16, right: 40, bottom: 44, left: compact() ? 52 : 64 };
  const innerW = width - m.left - m.right;
  const innerH = height - m.top - m.bottom;
  const xs = points.map((p) => p.x);
  const ys = points.map((p) => p.y);
  let xMin = Math.min(...xs);
  let xMax = Math.max(...xs);
  if (xMin === xMax) {
    xMin -= 3600_000;
    xMax += 3600_000;
  }
  const yTicks = ticks(Math.min(0, ...ys), Math.max(...ys, 1), 4);
  const yMin = yTicks[0];
  const yMax = yTicks[yTicks.length - 1];
  const x = (v) => m.left + ((v - xMin) / (xMax - xMin)) * innerW;
  const y = (v) => m.top + innerH - ((v - yMin) / (yMax - yMin)) * innerH;
  const xTickCount = Math.min(compact() ? 2 : 4, points.length - 1);
  const xTicks =
    xTickCount === 0
      ? [points[0].x]
      : Array.from({ length: xTickCount + 1 }, (_, i) => xMin + ((xMax - xMin) * i) / xTickCount);

  const svg = s(
    'svg',
    {
      class: 'mk-chart mk-line-chart',
      viewBox: `0 0 ${width} ${height}`,
      role: 'img',
      'aria-label': o.summary,
      preserveAspectRatio: 'xMidYMid meet',
    },
    s('title', {}, o.summary),
    yTicks.map((v) =>
      s(
        'g',
        { class: 'mk-tick' },
        s('line', { class: 'mk-grid', x1: m.left, x2: width - m.right, y1: y(v), y2: y(v) }),
        s('text', { class: 'mk-tick-label', x: m.left - 8, y: y(v) + 4, 'text-anchor': 'end' }, o.formatY(v)),
      ),
    ),
    xTicks.map((v) =>
      s('text', { class: 'mk-tick-label', x: x(v), y: height - m.bottom + 18, 'text-anchor': 'middle' }, (o.formatXTick || o.formatX)(v)),
    ),
    s('line', { class: 'mk-axis', x1: m.left, x2: width - m.right, y1: y(yMin), y2: y(yMin) }),
    s('line', { class: 'mk-axis', x1: m.left, x2: m.left, y1: m.top, y2: m.top + innerH }),
    s('text', { class: 'mk-axis-label', x: m.left + innerW / 2, y: height - 6, 'text-anchor': 'middle' }, o.xLabel),
    s(
      'text',
      { class: 'mk-axis-label', x: 14, y: m.top + innerH / 2, 'text-anchor': 'middle', transform: `rotate(-90 14 ${m.top + innerH / 2})` },
      o.yLabel,
    ),
    points.length > 1
      ? s('polyline', { class: 'mk-line', points: points.map((p) => `${x(p.x)},${y(p.y)}`).join(' ') })
      : null,
    points.map((p) =>
      s(
        'circle',
        { class: 'mk-dot', cx: x(p.x), cy: y(p.y), r: 3.5, 'data-x': p.x, 'data-y': p.y },
        s('title', {}, `${o.formatX(p.x)}: ${o.formatY(p.y)}`),
      ),
    ),
  );
  return h(
    'figure',
    { class: 'mk-figure' },
    h('figcaption', {}, o.title),
    svg,
    hiddenTable(o.title, [o.xLabel, o.yLabel], points.map((p) => [o.formatX(p.x), o.formatY(p.y)])),
  );
}

/**
 * Estimates with their intervals, one row each: a point, a bar from
 * `lower` to `upper`, and a zero line. `rows`: [{label, value, lower,
 * upper}]; `o`: {title, summary, axisLabel, format, tickFormat (the axis's
 * shorter numbers; default `format`), columns: [label, value, lower,
 * upper]}. Returns a <figure>.
 */
export function intervalChart(rows, o) {
  // On a phone each row's label goes above its interval instead of beside it.
  const narrow = compact();
  const width = narrow ? 360 : 640;
  const rowH = narrow ? 60 : 46;
  const m = { top: 12, right: 36, bottom: 46, left: narrow ? 24 : 150 };
  const height = m.top + m.bottom + rowH * rows.length;
  const innerW = width - m.left - m.right;
  const bounds = rows.flatMap((r) => [r.lower, r.upper, r.value]).filter(Number.isFinite);
  const xTicks = ticks(Math.min(0, ...bounds), Math.max(0, ...bounds), narrow ? 3 : 5);
  const lo = xTicks[0];
  const hi = xTicks[xTicks.length - 1];
  const x = (v) => m.left + ((v - lo) / (hi - lo)) * innerW;
  const bottom = m.top + rowH * rows.length;

  const svg = s(
    'svg',
    {
      class: 'mk-chart mk-interval-chart',
      viewBox: `0 0 ${width} ${height}`,
      role: 'img',
      'aria-label': o.summary,
      preserveAspectRatio: 'xMidYMid meet',
    },
    s('title', {}, o.summary),
    xTicks.map((v) =>
      s(
        'g',
        { class: 'mk-tick' },
        s('line', { class: 'mk-grid', x1: x(v), x2: x(v), y1: m.top, y2: bottom }),
        s('text', { class: 'mk-tick-label', x: x(v), y: bottom + 18, 'text-anchor': 'middle' }, (o.tickFormat || o.format)(v)),
      ),
    ),
    s('line', { class: 'mk-zero', x1: x(0), x2: x(0), y1: m.top - 4, y2: bottom + 4, 'data-zero': x(0) }),
    s('text', { class: 'mk-axis-label', x: m.left + innerW / 2, y: height - 6, 'text-anchor': 'middle' }, o.axisLabel),
    rows.map((r, i) => {
      const cy = m.top + rowH * i + rowH / 2 + (narrow ? 8 : 0);
      const shown = `${r.label}: ${o.format(r.value)} (${o.format(r.lower)} … ${o.format(r.upper)})`;
      return s(
        'g',
        {
          class: 'mk-estimate' + (r.lower > 0 ? ' mk-above' : r.upper < 0 ? ' mk-below' : ' mk-spans'),
          'data-label': r.label,
          'data-value': r.value,
          'data-lower': r.lower,
          'data-upper': r.upper,
        },
        s('title', {}, shown),
        narrow
          ? s('text', { class: 'mk-row-label', x: m.left, y: cy - 16, 'text-anchor': 'start' }, r.label)
          : s('text', { class: 'mk-row-label', x: m.left - 10, y: cy + 4, 'text-anchor': 'end' }, r.label),
        s('line', { class: 'mk-interval', x1: x(r.lower), x2: x(r.upper), y1: cy, y2: cy }),
        s('line', { class: 'mk-whisker', x1: x(r.lower), x2: x(r.lower), y1: cy - 7, y2: cy + 7 }),
        s('line', { class: 'mk-whisker', x1: x(r.upper), x2: x(r.upper), y1: cy - 7, y2: cy + 7 }),
        s('circle', { class: 'mk-point', cx: x(r.value), cy, r: 6 }),
      );
    }),
  );
  return h(
    'figure',
    { class: 'mk-figure' },
    h('figcaption', {}, o.title),
    svg,
    hiddenTable(o.title, o.columns, rows.map((r) => [r.label, o.format(r.value), o.format(r.lower), o.format(r.upper)])),
  );
}
