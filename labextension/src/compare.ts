/**
 * A comparison of runs, in a main-area tab: a table with a row per run and a column per
 * param and per metric (its last value), where a column whose values differ between the
 * runs is highlighted and any column sorts the runs; then one chart per metric with a
 * line per run.
 *
 * The table comes from `compare` (the same data as `ws.runs.list()`), the charts from
 * each run's metric series, followed with the `since` cursor while a run is live. Once
 * every run has ended and every value is read, nothing more is asked.
 */
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { CommandRegistry } from '@lumino/commands';
import { Widget } from '@lumino/widgets';

import { api, ICompared } from './api';
import { ChartGrid, IPoint } from './charts';
import { OPEN_RUN } from './commands';
import { badge, element, formatDuration, formatValue, linkButton } from './format';
import { VisiblePoll } from './poll';

/** Milliseconds between two polls while a compared run is live. */
const COMPARE_INTERVAL = 2000;

/** A column of the table: a fixed field, a param or a metric. */
interface IColumn {
  kind: 'run' | 'param' | 'metric';
  name: string;
  value: (run: ICompared) => unknown;
}

export class CompareView extends Widget {
  constructor(
    readonly runIds: string[],
    private readonly commands: CommandRegistry,
    rendermime: IRenderMimeRegistry | null
  ) {
    super();
    this.addClass('mlmagic-compare');
    this.node.dataset.runs = runIds.join(',');
    this._charts = new ChartGrid(rendermime, 'run', 'None of these runs logged metrics.');
    this._error.hidden = true;
    this.node.append(
      element('h2', 'mlmagic-compare-title', `${runIds.length} runs`),
      this._error,
      this._table,
      element('h3', 'mlmagic-section-title', 'Metrics'),
      this._charts.node
    );
    // It follows this view (shown, hidden, disposed) through a message hook on it.
    new VisiblePoll(this, () => this._tick());
  }

  dispose(): void {
    this._charts.dispose();
    super.dispose();
  }

  private async _tick(): Promise<number | null> {
    try {
      const reply = await api.compare(this.runIds);
      this._runs = reply.runs;
      this._showTable();
      let more = false;
      let live = false;
      const chunks = await Promise.all(
        this.runIds.map(id => api.metrics(id, this._cursors.get(id) ?? 0))
      );
      chunks.forEach((chunk, i) => {
        const id = this.runIds[i];
        this._cursors.set(id, chunk.cursor);
        more ||= chunk.metrics.length > 0;
        live ||= chunk.live;
        for (const point of chunk.metrics) {
          if (point.value === null || point.rank !== 0) {
            continue; // one line per run: rank 0's, as the table's last values
          }
          const series = this._series.get(point.name) ?? [];
          series.push({ step: point.step, value: point.value, series: id });
          this._series.set(point.name, series);
        }
      });
      if (more || !this._drawn) {
        this._drawn = true;
        this._charts.show(this._series);
      }
      this._error.hidden = true;
      if (!live) {
        if (more) {
          return 0;
        }
        return null;
      }
    } catch (error) {
      this._error.hidden = false;
      this._error.textContent = (error as Error).message;
      return COMPARE_INTERVAL * 5;
    }
    return COMPARE_INTERVAL;
  }

  private _columns(): IColumn[] {
    const params = new Set<string>();
    const metrics = new Set<string>();
    for (const run of this._runs) {
      Object.keys(run.params).forEach(name => params.add(name));
      Object.keys(run.metrics).forEach(name => metrics.add(name));
    }
    return [
      { kind: 'run', name: 'status', value: run => run.status },
      { kind: 'run', name: 'duration', value: run => run.duration },
      { kind: 'run', name: 'environment', value: run => run.environment },
      ...[...params].sort().map(name => ({
        kind: 'param' as const,
        name,
        value: (run: ICompared) => run.params[name]
      })),
      ...[...metrics].sort().map(name => ({
        kind: 'metric' as const,
        name,
        value: (run: ICompared) => run.metrics[name]
      }))
    ];
  }

  private _showTable(): void {
    const columns = this._columns();
    const runs = [...this._runs];
    if (this._sortBy !== null) {
      const column = columns.find(c => `${c.kind}:${c.name}` === this._sortBy);
      if (column) {
        runs.sort((a, b) => this._sortDirection * compareValues(column.value(a), column.value(b)));
      }
    }
    const head = element('tr');
    head.append(element('th', 'mlmagic-compare-run', 'run'));
    for (const column of columns) {
      const key = `${column.kind}:${column.name}`;
      const th = element('th', `mlmagic-compare-${column.kind}`);
      const values = this._runs.map(run => JSON.stringify(column.value(run) ?? null));
      const differs = new Set(values).size > 1;
      th.classList.toggle('mlmagic-differs', differs);
      th.dataset.column = key;
      const sorted = this._sortBy === key;
      th.setAttribute(
        'aria-sort',
        sorted ? (this._sortDirection > 0 ? 'ascending' : 'descending') : 'none'
      );
      const label = column.kind === 'param' ? `${column.name}` : column.name;
      const control = linkButton(
        label + (sorted ? (this._sortDirection > 0 ? ' ▲' : ' ▼') : ''),
        `Sort the runs by ${column.kind === 'run' ? '' : column.kind + ' '}${column.name}` +
          (differs ? ' (the runs differ here)' : ''),
        () => {
          this._sortDirection = sorted ? -this._sortDirection : 1;
          this._sortBy = key;
          this._showTable();
        }
      );
      th.append(control);
      head.append(th);
    }
    const body = element('tbody');
    for (const run of runs) {
      const row = element('tr', 'mlmagic-compare-row');
      row.dataset.runId = run.id;
      const name = element('td', 'mlmagic-compare-run');
      name.append(
        linkButton(run.name ? `${run.id} (${run.name})` : run.id, `Open run ${run.id}`, () => {
          void this.commands.execute(OPEN_RUN, { id: run.id });
        })
      );
      row.append(name);
      for (const column of columns) {
        const value = column.value(run);
        const cell = element('td', `mlmagic-compare-${column.kind}`);
        cell.dataset.column = `${column.kind}:${column.name}`;
        const values = this._runs.map(r => JSON.stringify(column.value(r) ?? null));
        cell.classList.toggle('mlmagic-differs', new Set(values).size > 1);
        if (column.name === 'status' && column.kind === 'run') {
          cell.append(badge(String(value)));
        } else if (column.name === 'duration' && column.kind === 'run') {
          cell.textContent = formatDuration(value as number | null);
        } else {
          cell.textContent = formatValue(value);
        }
        row.append(cell);
      }
      body.append(row);
    }
    const thead = element('thead');
    thead.append(head);
    this._table.replaceChildren(thead, body);
  }

  private readonly _error = element('div', 'mlmagic-error');
  private readonly _table = element('table', 'mlmagic-table mlmagic-compare-table');
  private readonly _charts: ChartGrid;
  private readonly _cursors = new Map<string, number>();
  private readonly _series = new Map<string, IPoint[]>();
  private _runs: ICompared[] = [];
  private _sortBy: string | null = null;
  private _sortDirection = 1;
  private _drawn = false;
}

/** Numbers by value, missing values last, anything else as text. */
function compareValues(a: unknown, b: unknown): number {
  if (a === b) {
    return 0;
  }
  if (a === null || a === undefined) {
    return 1;
  }
  if (b === null || b === undefined) {
    return -1;
  }
  if (typeof a === 'number' && typeof b === 'number') {
    return a - b;
  }
  return formatValue(a).localeCompare(formatValue(b));
}
