// Small hand-drawn SVG charts: a sparkline with its area, drawn into an existing <svg> whose
// viewBox is 300 × 70. Gaps (null) break the line; the scale starts at zero.

const NS = 'http://www.w3.org/2000/svg';

function node(tag, attributes) {
  const element = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  return element;
}

/** Draws `values` (oldest first; null = no data) across the chart's width, `capacity` points wide. */
export function sparkline(svg, values, { capacity = 90, colour = '#2f6f5e', min = 0 } = {}) {
  const width = 300;
  const height = 70;
  const pad = 4;
  const known = values.filter((v) => typeof v === 'number' && Number.isFinite(v));
  const max = Math.max(min + 1e-9, ...known) * 1.1;
  const x = (i) => width - (values.length - 1 - i) * (width / (capacity - 1));
  const y = (v) => height - pad - ((v - min) / (max - min)) * (height - 2 * pad);
  svg.replaceChildren();
  for (const fraction of [0.5, 1]) {
    svg.append(node('line', { x1: 0, x2: width, y1: y(min + (max - min) * fraction / 1.1), y2: y(min + (max - min) * fraction / 1.1), stroke: '#eceff2', 'stroke-width': 1 }));
  }
  svg.append(node('line', { x1: 0, x2: width, y1: height - pad, y2: height - pad, stroke: '#dde2e7', 'stroke-width': 1 }));
  // Runs of known values, each drawn as an area and a line.
  let run = [];
  const flush = () => {
    if (!run.length) return;
    const points = run.map(([i, v]) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`);
    if (run.length === 1) {
      svg.append(node('circle', { cx: x(run[0][0]), cy: y(run[0][1]), r: 2, fill: colour }));
    } else {
      const area = `M${x(run[0][0]).toFixed(1)},${height - pad} L${points.join(' L')} L${x(run.at(-1)[0]).toFixed(1)},${height - pad} Z`;
      svg.append(node('path', { d: area, fill: colour, 'fill-opacity': 0.12, stroke: 'none' }));
      svg.append(node('polyline', { points: points.join(' '), fill: 'none', stroke: colour, 'stroke-width': 1.6, 'vector-effect': 'non-scaling-stroke', 'stroke-linejoin': 'round' }));
    }
    run = [];
  };
  values.forEach((v, i) => {
    if (typeof v === 'number' && Number.isFinite(v)) run.push([i, v]); else flush();
  });
  flush();
}

/** A new <svg> for a sparkline, with an accessible label. */
export function chart(label) {
  return node('svg', { class: 'chart', viewBox: '0 0 300 70', preserveAspectRatio: 'none', role: 'img', 'aria-label': label });
}
