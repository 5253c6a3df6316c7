// Metric charts for the task page, drawn by uPlot (vendor/uPlot.iife.min.js, the
// version web/package-lock.json pins).
//
// A chart is given every point the API returned: nothing is sampled or dropped.
// Values that are not finite (the API sends NaN and the infinities as the strings
// "NaN", "+Inf" and "-Inf") become gaps in the line, and the chart's note counts
// them. The number of points a chart was given is written to its element as
// data-points, for the tests and for anyone who wonders.
"use strict";

const Charts = (() => {
  const HEIGHT = 220;

  // Ten colours that stay apart from each other on a light and on a dark panel.
  const PALETTE = [
    "#3b7ddd", "#e8772e", "#2ca58d", "#d64550", "#8e6bd1",
    "#b8912b", "#d45fa8", "#4fa3c7", "#7d8b2f", "#8c6b5a",
  ];

  const darkQuery = window.matchMedia("(prefers-color-scheme: dark)");
  const live = new Set(); // every chart on the page, to redraw on a theme change

  function color(i) {
    return PALETTE[i % PALETTE.length];
  }

  // value turns what the API sent for one point into what uPlot draws: a number,
  // or null, a gap, for NaN and the infinities.
  function value(v) {
    return typeof v === "number" && Number.isFinite(v) ? v : null;
  }

  function theme() {
    const cs = getComputedStyle(document.documentElement);
    const get = (name) => cs.getPropertyValue(name).trim();
    return { text: get("--text"), muted: get("--muted"), line: get("--line") };
  }

  function formatNumber(v) {
    if (v === null || v === undefined) {
      return "–";
    }
    const a = Math.abs(v);
    if (Number.isInteger(v) && a < 1e9) {
      return String(v);
    }
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) {
      return v.toExponential(3).replace(/\.?0+e/, "e");
    }
    return String(Number(v.toPrecision(5)));
  }

  // axisWidth fits the y axis to its longest tick label.
  function axisWidth(u, values, axisIdx, cycleNum) {
    const axis = u.axes[axisIdx];
    if (cycleNum > 1) {
      return axis._size;
    }
    const longest = (values || []).reduce((n, s) => Math.max(n, String(s).length), 0);
    return Math.max(44, 18 + Math.ceil(longest * 7.5));
  }

  // Chart is one uPlot chart of values against step in a container element, sized
  // to the container and redrawn in the colours of the current theme. spec has
  // series (a list of {label, color, width}), height, sync (charts with the same
  // key share the cursor) and legend (whether to show uPlot's legend).
  class Chart {
    constructor(container, spec) {
      this.container = container;
      this.spec = spec;
      this.data = null;
      this.zoomed = false;
      this.u = null;
      this.resize = new ResizeObserver(() => this.fit());
      this.resize.observe(container);
      live.add(this);
    }

    options() {
      const t = theme();
      const axis = {
        stroke: t.muted,
        grid: { stroke: t.line, width: 1 },
        ticks: { stroke: t.line, width: 1 },
        font: "12px system-ui, sans-serif",
        labelFont: "12px system-ui, sans-serif",
      };
      return {
        width: Math.max(200, this.container.clientWidth),
        height: this.spec.height || HEIGHT,
        scales: { x: { time: false } },
        axes: [
          { ...axis, size: 34 },
          { ...axis, size: axisWidth, values: (u, splits) => splits.map(formatNumber) },
        ],
        series: [
          { label: "step", value: (u, v) => formatNumber(v) },
          ...this.spec.series.map((s) => ({
            label: s.label,
            stroke: s.color,
            width: s.width || 1.5,
            spanGaps: false,
            value: (u, v) => formatNumber(v),
          })),
        ],
        cursor: { sync: { key: this.spec.sync || "" }, drag: { x: true, y: false } },
        legend: { show: Boolean(this.spec.legend) },
        hooks: {
          setSelect: [(u) => {
            if (u.select.width > 0) {
              this.zoomed = true;
            }
          }],
        },
      };
    }

    build() {
      if (this.u) {
        this.u.destroy();
      }
      this.u = new uPlot(this.options(), this.data, this.container);
      // uPlot resets the zoom on a double click; the next update may rescale again.
      this.u.over.addEventListener("dblclick", () => {
        this.zoomed = false;
      });
    }

    // setData draws data, uPlot's aligned arrays [xs, ys1, ys2...]. It keeps the
    // user's zoom when the series are the same as before.
    setData(data, spec) {
      const same = this.u && (!spec || sameSeries(spec, this.spec));
      if (spec) {
        this.spec = spec;
      }
      this.data = data;
      if (same) {
        this.u.setData(data, !this.zoomed);
      } else {
        this.build();
      }
    }

    fit() {
      const w = this.container.clientWidth;
      if (this.u && w > 0 && Math.abs(w - this.u.width) > 1) {
        this.u.setSize({ width: w, height: this.u.height });
      }
    }

    destroy() {
      this.resize.disconnect();
      live.delete(this);
      if (this.u) {
        this.u.destroy();
        this.u = null;
      }
    }
  }

  function sameSeries(a, b) {
    return a.series.length === b.series.length &&
      a.series.every((s, i) => s.label === b.series[i].label && s.color === b.series[i].color &&
        s.width === b.series[i].width) &&
      Boolean(a.legend) === Boolean(b.legend);
  }

  darkQuery.addEventListener("change", () => {
    for (const c of live) {
      if (c.data) {
        c.build();
      }
    }
  });

  // curveData turns one curve of the API ({step: [...], value: [...]}) into uPlot's
  // data, every point kept, and counts the gaps.
  function curveData(curve) {
    const steps = Array.isArray(curve.step) ? curve.step : [];
    const values = Array.isArray(curve.value) ? curve.value : [];
    const n = Math.min(steps.length, values.length);
    const xs = new Array(n);
    const ys = new Array(n);
    let gaps = 0;
    for (let i = 0; i < n; i++) {
      xs[i] = steps[i];
      ys[i] = value(values[i]);
      if (ys[i] === null) {
        gaps++;
      }
    }
    return { data: [xs, ys], points: n, gaps };
  }

  // overlayData puts several curves on one step axis: the union of their steps,
  // each curve undefined (no point, nothing drawn) where it has no step and null (a
  // gap) where its value is not finite. A step a curve reported twice keeps its
  // later value there; points counts what is drawn.
  function overlayData(curves) {
    const all = new Set();
    for (const c of curves) {
      for (const s of c.step || []) {
        all.add(s);
      }
    }
    const xs = Array.from(all).sort((a, b) => a - b);
    const at = new Map(xs.map((x, i) => [x, i]));
    let points = 0;
    let gaps = 0;
    const ys = curves.map((c) => {
      const y = new Array(xs.length).fill(undefined);
      const steps = c.step || [];
      const values = c.value || [];
      for (let i = 0; i < steps.length && i < values.length; i++) {
        const idx = at.get(steps[i]);
        if (y[idx] === undefined) {
          points++;
        } else if (y[idx] === null) {
          gaps--;
        }
        y[idx] = value(values[i]);
        if (y[idx] === null) {
          gaps++;
        }
      }
      return y;
    });
    return { data: [xs, ...ys], points, gaps };
  }

  return { Chart, color, curveData, overlayData, formatNumber };
})();
