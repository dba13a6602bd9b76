/**
 * Metric charts, drawn by the Vega-Lite renderer JupyterLab ships
 * (`application/vnd.vegalite.v5+json`, through the rendermime registry): no chart code
 * of our own. Vega follows JupyterLab's theme when a chart is drawn, so every chart is
 * drawn again when the theme changes between light and dark.
 *
 * A chart is one metric: steps on x, one line per series (the ranks of a distributed
 * run, or the runs of a comparison). It is drawn as SVG so that each logged value is one
 * mark a person can point at (with a tooltip) and a test can count. Without the Vega
 * renderer (an install that disabled it) a chart says so and shows the last values.
 */
import { MimeModel } from '@jupyterlab/rendermime';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';

import { element } from './format';

/** The MIME type of a Vega-Lite 5 spec, as JupyterLab's renderer registers it. */
export const VEGALITE_MIME = 'application/vnd.vegalite.v5+json';
/** Above this many values a line is drawn without a mark per value. */
const MAX_MARKS = 1000;

/** One value of a series. */
export interface IPoint {
  step: number;
  value: number;
  /** The line it belongs to: a rank (`rank 1`) or a run id. */
  series: string;
}

/** The Vega-Lite spec of one metric's chart. */
export function metricSpec(
  name: string,
  points: IPoint[],
  seriesTitle: string,
  width = 400
): Record<string, unknown> {
  const several = new Set(points.map(p => p.series)).size > 1;
  const encoding: Record<string, unknown> = {
    x: { field: 'step', type: 'quantitative', title: 'step', axis: { tickMinStep: 1 } },
    y: { field: 'value', type: 'quantitative', title: name, scale: { zero: false } },
    tooltip: [
      { field: 'series', title: seriesTitle },
      { field: 'step', title: 'step' },
      { field: 'value', title: name, format: '.4~g' }
    ]
  };
  if (several) {
    // Below the plot, so that long run ids do not take the plot's width.
    encoding.color = {
      field: 'series',
      type: 'nominal',
      title: seriesTitle,
      legend: { orient: 'bottom', direction: 'vertical', labelLimit: 0 }
    };
  }
  return {
    width,
    height: 150,
    // The width is the chart's room; the height is the plot's, a legend adds to it.
    autosize: { type: 'fit-x', contains: 'padding' },
    background: null,
    data: { values: points },
    mark: { type: 'line', point: points.length <= MAX_MARKS, interpolate: 'linear' },
    encoding
  };
}

/**
 * One metric's chart, kept across updates: `show()` draws it again with every value so
 * far (a render in flight is followed by one more with the latest values, never by one
 * per update).
 */
export class MetricChart {
  readonly node: HTMLElement;

  constructor(
    private readonly rendermime: IRenderMimeRegistry | null,
    readonly name: string,
    private readonly seriesTitle: string
  ) {
    this.node = element('figure', 'mlmagic-chart');
    this.node.dataset.metric = name;
    // Reachable from the keyboard; a screen reader hears the summary.
    this.node.tabIndex = 0;
    this.node.setAttribute('role', 'img');
    const caption = element('figcaption', 'mlmagic-chart-title', name);
    this.node.append(caption, this._host);
    charts.add(this);
    // Drawn at the width the chart has: again when that changes (the tab was hidden
    // when the values came, or the main area was resized).
    this._resize = new ResizeObserver(() => {
      const width = this.node.clientWidth;
      if (width > 0 && Math.abs(width - this._drawnWidth) > 16) {
        void this._draw();
      }
    });
    this._resize.observe(this.node);
  }

  /** Draw the chart with these values (null values are left out). */
  show(points: IPoint[]): void {
    this._points = points;
    this.node.dataset.points = String(points.length);
    const last = points[points.length - 1];
    this.node.setAttribute(
      'aria-label',
      `${this.name}: ${points.length} values` +
        (last ? `, the last ${last.value} at step ${last.step}` : '')
    );
    void this._draw();
  }

  /** Draw again (the theme changed). */
  redraw(): void {
    void this._draw();
  }

  dispose(): void {
    charts.delete(this);
    this._resize.disconnect();
    this._renderer?.dispose();
    this._renderer = null;
    this._disposed = true;
  }

  private async _draw(): Promise<void> {
    if (this._drawing) {
      this._again = true;
      return;
    }
    this._drawing = true;
    try {
      do {
        this._again = false;
        await this._render(this._points);
      } while (this._again && !this._disposed);
    } finally {
      this._drawing = false;
    }
  }

  private async _render(points: IPoint[]): Promise<void> {
    if (this._disposed) {
      return;
    }
    const renderer = this._rendererFor();
    if (renderer === null) {
      this._host.replaceChildren(
        element(
          'p',
          'mlmagic-empty',
          "JupyterLab's Vega-Lite renderer is not enabled: the last values are " +
            points
              .slice(-5)
              .map(p => `${p.step}: ${p.value}`)
              .join(', ')
        )
      );
      return;
    }
    if (this.node.clientWidth === 0) {
      // Hidden (drawn by the observer once it has a width again), or measured in the
      // middle of a theme's change of stylesheets: look again at the next frame.
      this._drawnWidth = 0;
      requestAnimationFrame(() => {
        if (this.node.clientWidth > 0 && this._drawnWidth === 0) {
          void this._draw();
        }
      });
      return;
    }
    this._drawnWidth = this.node.clientWidth;
    const width = Math.max(200, this._drawnWidth - 40);
    const model = new MimeModel({
      data: {
        [VEGALITE_MIME]: metricSpec(this.name, points, this.seriesTitle, width) as any
      },
      metadata: {
        [VEGALITE_MIME]: { embed_options: { renderer: 'svg', actions: false } }
      }
    });
    try {
      await renderer.renderModel(model);
      this.node.dataset.drawn = String(points.length);
    } catch (error) {
      this._host.replaceChildren(
        element('p', 'mlmagic-error', `The chart failed: ${(error as Error).message}`)
      );
    }
  }

  private _rendererFor(): IRenderMime.IRenderer | null {
    if (this._renderer === null && this.rendermime?.getFactory(VEGALITE_MIME)) {
      this._renderer = this.rendermime.createRenderer(VEGALITE_MIME);
      this._renderer.addClass('mlmagic-chart-plot');
      this._host.replaceChildren(this._renderer.node);
    }
    return this._renderer;
  }

  private readonly _host = element('div', 'mlmagic-chart-host');
  private _renderer: IRenderMime.IRenderer | null = null;
  private _points: IPoint[] = [];
  private readonly _resize: ResizeObserver;
  private _drawnWidth = 0;
  private _drawing = false;
  private _again = false;
  private _disposed = false;
}

/**
 * The charts of one view by metric name, in the order the metrics first came.
 */
export class ChartGrid {
  readonly node = element('div', 'mlmagic-charts');

  constructor(
    private readonly rendermime: IRenderMimeRegistry | null,
    private readonly seriesTitle: string,
    private readonly empty: string
  ) {
    this.node.append(element('p', 'mlmagic-empty', empty));
  }

  /** Show these series: metric name → its values. */
  show(series: Map<string, IPoint[]>): void {
    if (series.size === 0) {
      this.node.replaceChildren(element('p', 'mlmagic-empty', this.empty));
      return;
    }
    if (this._charts.size === 0) {
      this.node.replaceChildren();
    }
    for (const [name, points] of series) {
      let chart = this._charts.get(name);
      if (!chart) {
        chart = new MetricChart(this.rendermime, name, this.seriesTitle);
        this._charts.set(name, chart);
        this.node.append(chart.node);
      }
      chart.show(points);
    }
  }

  dispose(): void {
    for (const chart of this._charts.values()) {
      chart.dispose();
    }
    this._charts.clear();
  }

  private readonly _charts = new Map<string, MetricChart>();
}

// Every chart on screen, drawn again when JupyterLab switches between light and dark.
const charts = new Set<MetricChart>();
new MutationObserver(() => charts.forEach(chart => chart.redraw())).observe(document.body, {
  attributes: true,
  attributeFilter: ['data-jp-theme-light']
});
