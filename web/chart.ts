/**
 * A small line chart on a canvas for the live training curves: no charting library, so nothing
 * heavy loads with the page. One series per chart, x = step; the axes show the range.
 *
 * @module
 */

/** Draws `points` ([step, value]) with a title, axes and min/max labels. */
export function drawLineChart(
  canvas: HTMLCanvasElement,
  title: string,
  points: readonly [number, number][],
  color = "#2563eb",
): void {
  const g = canvas.getContext("2d");
  if (!g) return;
  const { width: w, height: h } = canvas;
  const pad = { left: 52, right: 10, top: 22, bottom: 22 };
  g.clearRect(0, 0, w, h);
  g.fillStyle = "#fff";
  g.fillRect(0, 0, w, h);
  g.fillStyle = "#111";
  g.font = "13px system-ui, sans-serif";
  g.fillText(title, pad.left, 15);
  g.strokeStyle = "#999";
  g.lineWidth = 1;
  g.beginPath();
  g.moveTo(pad.left, pad.top);
  g.lineTo(pad.left, h - pad.bottom);
  g.lineTo(w - pad.right, h - pad.bottom);
  g.stroke();
  if (points.length === 0) return;
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
  if (y0 === y1) [y0, y1] = [y0 - Math.abs(y0 || 1) * 0.05, y1 + Math.abs(y1 || 1) * 0.05];
  const px = (x: number) => pad.left + ((x - x0) / (x1 - x0)) * (w - pad.left - pad.right);
  const py = (y: number) => h - pad.bottom - ((y - y0) / (y1 - y0)) * (h - pad.top - pad.bottom);
  g.fillStyle = "#555";
  g.font = "11px system-ui, sans-serif";
  g.fillText(y1.toPrecision(4), 2, pad.top + 8);
  g.fillText(y0.toPrecision(4), 2, h - pad.bottom);
  g.fillText(`step ${x0}`, pad.left, h - 6);
  const right = `step ${x1}`;
  g.fillText(right, w - pad.right - g.measureText(right).width, h - 6);
  g.strokeStyle = color;
  g.lineWidth = 2;
  g.beginPath();
  points.forEach(([x, y], i) => (i === 0 ? g.moveTo(px(x), py(y)) : g.lineTo(px(x), py(y))));
  g.stroke();
  g.fillStyle = color;
  for (const [x, y] of points) {
    g.beginPath();
    g.arc(px(x), py(y), 3, 0, 2 * Math.PI);
    g.fill();
  }
}
