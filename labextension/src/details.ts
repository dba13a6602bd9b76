/**
 * A run's details, in a main-area tab: its header (status, duration, experiment,
 * environment version, image, target, tags), the stage timeline, a chart per metric,
 * params, the files of outputs/ and logs/, the models registered from it, and its log
 * (the log view, as the last section); Cancel while it is live, and Re-run….
 *
 * While the run is live and the tab visible it asks every 2 s for its overview, the
 * metric values logged since the last request (the metrics `since` cursor) and, every
 * few polls, its files; once the run has ended and every value is read it asks nothing
 * more. Nothing is reloaded: the charts and tables are updated in place.
 */
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { CommandRegistry } from '@lumino/commands';
import { Panel, Widget } from '@lumino/widgets';

import { api, IMetricPoint, IRunFile, IRunFiles, IRunOverview, runFileUrl } from './api';
import { ChartGrid, IPoint } from './charts';
import {
  environmentArgs,
  OPEN_DOCUMENT,
  OPEN_ENVIRONMENT,
  OPEN_LINEAGE,
  RERUN_RUN
} from './commands';
import {
  badge,
  element,
  formatBytes,
  formatDuration,
  formatTime,
  formatValue,
  linkButton
} from './format';
import { RunLogView } from './log';
import { VisiblePoll } from './poll';

/** Milliseconds between two polls of a live run. */
export const DETAILS_INTERVAL = 2000;
/** The files of a live run are asked for every this many polls. */
const FILES_EVERY = 3;
/** The stages of a run, in order. */
const STAGES = ['Queued', 'Preparing', 'Starting', 'Running', 'Finalizing'];

export class RunDetailsView extends Panel {
  constructor(
    readonly runId: string,
    private readonly commands: CommandRegistry,
    rendermime: IRenderMimeRegistry | null
  ) {
    super();
    this.addClass('mlmagic-details');
    this.node.dataset.runId = runId;
    this.node.tabIndex = -1;
    this._charts = new ChartGrid(rendermime, 'rank', 'No metrics logged yet.');
    const summary = new Widget();
    summary.addClass('mlmagic-details-summary');
    this._error.hidden = true;
    summary.node.append(
      this._header,
      this._error,
      section('Stages', this._timeline, 'mlmagic-details-stages'),
      section('Metrics', this._charts.node, 'mlmagic-details-metrics'),
      section('Params', this._params, 'mlmagic-details-params'),
      section('Files', this._files, 'mlmagic-details-files'),
      section('Models', this._models, 'mlmagic-details-models'),
      element('h3', 'mlmagic-section-title', 'Log')
    );
    this.addWidget(summary);
    this._log = new RunLogView(runId);
    this._log.addClass('mlmagic-details-log');
    this.addWidget(this._log);
    this._poll = new VisiblePoll(this, () => this._tick());
  }

  /** The run has ended and everything about it has been read. */
  get complete(): boolean {
    return this._poll.done;
  }

  dispose(): void {
    this._charts.dispose();
    super.dispose();
  }

  private async _tick(): Promise<number | null> {
    const files = this._count++ % FILES_EVERY === 0;
    let overview: IRunOverview;
    try {
      // Each part is shown as soon as it comes: a slow one holds back no other.
      const [first, chunk, listing] = await Promise.all([
        api.overview(this.runId).then(reply => {
          this._showOverview(reply);
          return reply;
        }),
        api.metrics(this.runId, this._cursor),
        files ? api.files(this.runId) : Promise.resolve(null)
      ]);
      overview = first;
      this._showError(null);
      this._addMetrics(chunk.metrics);
      this._cursor = chunk.cursor;
      if (listing) {
        this._showFiles(listing);
      }
      if (!chunk.live && !overview.live) {
        if (chunk.metrics.length) {
          return 0; // more may be written already: read to the end
        }
        if (!files) {
          this._count = 0; // one last look at the files the run left
          return 0;
        }
        return null;
      }
    } catch (error) {
      this._showError((error as Error).message);
      return DETAILS_INTERVAL * 5;
    }
    return DETAILS_INTERVAL;
  }

  private _showError(message: string | null): void {
    this._error.hidden = message === null;
    this._error.textContent = message ?? '';
  }

  private _showOverview(run: IRunOverview): void {
    const signature = JSON.stringify({ ...run, duration: null });
    if (signature === this._signature) {
      this._refreshDuration(run);
      return;
    }
    this._signature = signature;
    this._showHeader(run);
    this._showTimeline(run);
    this._showParams(run.params);
    this._showModels(run);
  }

  private _refreshDuration(run: IRunOverview): void {
    const duration = this._header.querySelector('.mlmagic-duration');
    if (duration) {
      duration.textContent = formatDuration(run.duration ?? liveDuration(run));
    }
  }

  private _showHeader(run: IRunOverview): void {
    const title = element('div', 'mlmagic-details-title');
    const status = run.live && run.cancel_requested ? 'Canceling' : run.status;
    title.append(
      badge(status, run.status),
      element('span', 'mlmagic-details-id', run.id),
      element('span', 'mlmagic-duration', formatDuration(run.duration ?? liveDuration(run)))
    );
    if (run.live) {
      const cancel = element('button', 'jp-Button jp-mod-styled mlmagic-button mlmagic-cancel');
      cancel.textContent = 'Cancel';
      cancel.title = `Cancel run ${run.id}`;
      cancel.disabled = run.cancel_requested;
      cancel.addEventListener('click', () => {
        cancel.disabled = true;
        api.cancel(run.id).then(
          () => this._poll.start(),
          error => {
            cancel.disabled = false;
            this._showError((error as Error).message);
          }
        );
      });
      title.append(cancel);
    }
    const rerun = element('button', 'jp-Button jp-mod-styled mlmagic-button mlmagic-rerun');
    rerun.textContent = 'Re-run…';
    rerun.title = `Run the code of run ${run.id} again, with its options`;
    rerun.addEventListener('click', () => void this.commands.execute(RERUN_RUN, { id: run.id }));
    title.append(rerun);
    const facts = element('dl', 'mlmagic-facts');
    const fact = (term: string, value: string | HTMLElement | null): void => {
      if (value === null || value === '') {
        return;
      }
      const dd = element('dd');
      dd.append(value);
      facts.append(element('dt', '', term), dd);
    };
    fact('experiment', run.name ? `${run.experiment} · ${run.name}` : run.experiment);
    const env = environmentArgs(run.environment);
    fact(
      'environment',
      env
        ? linkButton(run.environment, `Open environment ${run.environment}`, () => {
            void this.commands.execute(OPEN_ENVIRONMENT, env);
          })
        : run.environment
    );
    fact('image', run.image ?? run.environment_version?.image ?? '');
    fact('target', run.distributed ? `${run.target} · ${run.distributed}` : run.target);
    fact('script', [run.script, ...run.args].join(' '));
    fact('started', formatTime(run.started ?? run.created));
    fact('exit code', run.exit_code === null ? '' : String(run.exit_code));
    fact('error', run.error ?? '');
    const tags = Object.entries(run.tags);
    if (tags.length) {
      const list = element('span', 'mlmagic-tags');
      list.append(...tags.map(([k, v]) => element('span', 'mlmagic-tag', `${k}=${v}`)));
      fact('tags', list);
    }
    this._header.dataset.status = run.status;
    this._header.replaceChildren(title, facts);
  }

  private _showTimeline(run: IRunOverview): void {
    const now = Date.now() / 1000;
    const known = STAGES.filter(stage => run.stages[stage]);
    if (!known.length) {
      this._timeline.replaceChildren(element('p', 'mlmagic-empty', 'Not started yet.'));
      return;
    }
    const spans = known.map(stage => {
      const [start, end] = run.stages[stage];
      return { stage, seconds: Math.max(0, (end ?? run.ended ?? now) - start), open: end === null };
    });
    const total = spans.reduce((sum, s) => sum + s.seconds, 0) || 1;
    const bar = element('div', 'mlmagic-timeline');
    for (const span of spans) {
      const part = element('div', 'mlmagic-timeline-stage');
      part.dataset.stage = span.stage;
      part.classList.toggle('mlmagic-timeline-current', span.open && run.live);
      // Every stage stays readable however short it was.
      part.style.flexGrow = String(Math.max(span.seconds / total, 0.08));
      part.title = `${span.stage}: ${formatDuration(span.seconds)}`;
      part.append(
        element('span', 'mlmagic-timeline-name', span.stage),
        element('span', 'mlmagic-timeline-time', formatDuration(span.seconds))
      );
      bar.append(part);
    }
    this._timeline.replaceChildren(bar);
  }

  private _showParams(params: Record<string, unknown>): void {
    const entries = Object.entries(params);
    if (!entries.length) {
      this._params.replaceChildren(
        element('p', 'mlmagic-empty', 'No params: mlmagic_run.log_params(...) records them.')
      );
      return;
    }
    const table = element('table', 'mlmagic-table mlmagic-kv');
    for (const [name, value] of entries.sort(([a], [b]) => a.localeCompare(b))) {
      const row = element('tr');
      row.append(element('th', '', name), element('td', '', formatValue(value)));
      table.append(row);
    }
    this._params.replaceChildren(table);
  }

  private _showModels(run: IRunOverview): void {
    if (!run.models.length) {
      this._models.replaceChildren(
        element('p', 'mlmagic-empty', 'No models registered from this run.')
      );
      return;
    }
    const table = element('table', 'mlmagic-table');
    for (const model of run.models) {
      const row = element('tr', 'mlmagic-model');
      row.dataset.model = model.ref;
      const services = element('td', 'mlmagic-model-services');
      if (!model.services.length) {
        services.append(element('span', 'mlmagic-empty', 'not deployed'));
      }
      for (const service of model.services) {
        services.append(
          linkButton(service, `The lineage of service ${service}`, () => {
            void this.commands.execute(OPEN_LINEAGE, { service });
          })
        );
      }
      row.append(element('td', 'mlmagic-name', model.ref), element('td', '', model.file), services);
      table.append(row);
    }
    this._models.replaceChildren(table);
  }

  private _addMetrics(points: IMetricPoint[]): void {
    if (!points.length && this._seriesShown) {
      return;
    }
    for (const point of points) {
      if (point.value === null) {
        continue; // NaN or infinite: nothing to draw
      }
      let series = this._series.get(point.name);
      if (!series) {
        series = [];
        this._series.set(point.name, series);
      }
      series.push({ step: point.step, value: point.value, series: `rank ${point.rank}` });
    }
    this._seriesShown = true;
    this._charts.show(this._series);
  }

  private _showFiles(listing: IRunFiles): void {
    const signature = JSON.stringify(listing);
    if (signature === this._filesSignature) {
      return;
    }
    this._filesSignature = signature;
    if (!listing.files.length) {
      this._files.replaceChildren(
        element('p', 'mlmagic-empty', 'Nothing in outputs/ or logs/ yet.')
      );
      return;
    }
    const table = element('table', 'mlmagic-table mlmagic-files');
    for (const file of listing.files) {
      const row = element('tr', 'mlmagic-file');
      row.dataset.path = file.path;
      const name = element('td', 'mlmagic-file-name');
      name.append(this._fileControl(file, listing.lab_path));
      row.append(name, element('td', 'mlmagic-file-size', formatBytes(file.size)));
      table.append(row);
    }
    this._files.replaceChildren(table);
    if (listing.truncated) {
      this._files.append(
        element('p', 'mlmagic-empty', `Only the first ${listing.files.length} files are listed.`)
      );
    }
  }

  private _fileControl(file: IRunFile, labPath: string | null): HTMLElement {
    if (file.kind === 'link') {
      const text = element('span', 'mlmagic-file-link', `${file.path} (a link: not followed)`);
      return text;
    }
    if (labPath !== null) {
      return linkButton(file.path, `Open ${file.path} in JupyterLab`, () => {
        void this.commands.execute(OPEN_DOCUMENT, { path: `${labPath}/${file.path}` });
      });
    }
    const link = element('a', 'mlmagic-file-download', file.path);
    link.href = runFileUrl(this.runId, file.path);
    link.download = file.path.split('/').pop() ?? file.path;
    link.title = `Download ${file.path} (the workspace is not in JupyterLab's file browser)`;
    return link;
  }

  private readonly _header = element('header', 'mlmagic-details-header');
  private readonly _error = element('div', 'mlmagic-error');
  private readonly _timeline = element('div');
  private readonly _params = element('div');
  private readonly _files = element('div');
  private readonly _models = element('div');
  private readonly _charts: ChartGrid;
  private readonly _log: RunLogView;
  private readonly _poll: VisiblePoll;
  private readonly _series = new Map<string, IPoint[]>();
  private _seriesShown = false;
  private _cursor = 0;
  private _count = 0;
  private _signature = '';
  private _filesSignature = '';
}

function section(title: string, body: HTMLElement, name: string): HTMLElement {
  const node = element('section', `mlmagic-section ${name}`);
  node.append(element('h3', 'mlmagic-section-title', title), body);
  return node;
}

function liveDuration(run: IRunOverview): number | null {
  return run.started === null ? null : (run.ended ?? Date.now() / 1000) - run.started;
}
