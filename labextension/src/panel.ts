/**
 * The side panel: environments, runs, models and services of the server's workspace.
 *
 * It polls the API itself while it is visible (runs every 2 s, environments, models and
 * services every 10 s: a service's state is a request to its container) and not at all
 * while it is hidden. A poll of the runs asks only for those changed since the previous
 * one and merges them into the list it keeps, so an idle workspace costs the server next
 * to nothing however many runs it holds.
 *
 * Selecting a run opens its details; ticking runs and pressing Compare opens a
 * comparison; live runs have a Cancel button. An environment version opens its details,
 * a service its lineage, and a model links to the run that made it and the services
 * that use it. Rows are reachable with Tab and open with Enter.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { CommandRegistry } from '@lumino/commands';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { api, IEnvironment, IModel, IRun, IRunList, IService, RUNS_LIMIT } from './api';
import { COMPARE_RUNS, OPEN_ENVIRONMENT, OPEN_LINEAGE, OPEN_RUN } from './commands';
import { badge, element, formatDuration, formatTime, linkButton } from './format';
import { VisiblePoll } from './poll';
import { KeyedTable } from './table';
import { OPEN_EXECUTED } from './submit';

/** Milliseconds between two polls of the runs. */
export const RUNS_INTERVAL = 2000;
/** Environments and services are polled every this many polls of the runs. */
const SLOW_EVERY = 5;
/** Longest wait between polls while the server answers with errors. */
const MAX_BACKOFF = 30000;

/** The command that opens a run's log (registered by the plugin). */
export const OPEN_LOG = 'mlmagic:open-run-log';

export class MlmagicPanel extends Widget {
  constructor(private readonly commands: CommandRegistry) {
    super();
    this.addClass('mlmagic-panel');
    const header = element('div', 'mlmagic-panel-header');
    header.append(element('span', 'mlmagic-panel-title', 'mlmagic'), this._workspace);
    this._error.hidden = true;
    this.node.append(
      header,
      this._error,
      this._section('Environments', this._environments.node, 'mlmagic-environments'),
      this._section('Runs', this._runs.node, 'mlmagic-runs', this._compare),
      this._section('Models', this._models.node, 'mlmagic-models'),
      this._section('Services', this._services.node, 'mlmagic-services')
    );
    this._compare.disabled = true;
    this._compare.addEventListener('click', () => {
      void this.commands.execute(COMPARE_RUNS, { ids: [...this._selected] });
    });
    this._poll = new VisiblePoll(this, () => this._tick());
  }

  /** Poll again now (after an action). */
  refresh(): void {
    this._count = 0;
    if (this.isVisible) {
      this._poll.start();
    }
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._count = 0; // everything again when shown: the poll starts after this
  }

  private _section(
    title: string,
    body: HTMLElement,
    name: string,
    action: HTMLElement | null = null
  ): HTMLElement {
    const section = element('section', `mlmagic-section ${name}`);
    const heading = element('h3', 'mlmagic-section-title', title);
    if (action) {
      heading.append(action);
    }
    section.append(heading, body);
    return section;
  }

  private async _tick(): Promise<number> {
    const slow = this._count % SLOW_EVERY === 0;
    this._count++;
    const work: Promise<unknown>[] = [
      api.runs(this._cursor).then(list => this._showRuns(list))
    ];
    if (slow) {
      work.push(
        api.environments().then(r => this._showEnvironments(r.environments)),
        api.services().then(r => this._showServices(r.services)),
        api.models().then(r => this._models.show(r.models))
      );
      if (!this._workspace.textContent) {
        work.push(
          api.workspace().then(w => {
            // The project folder and .mlmagic; the whole path in the tooltip.
            this._workspace.textContent = w.path.split(/[\\/]/).slice(-2).join('/');
            this._workspace.title = `The workspace this panel shows: ${w.path}`;
          })
        );
      }
    }
    const failures = (await Promise.allSettled(work)).filter(
      (r): r is PromiseRejectedResult => r.status === 'rejected'
    );
    if (failures.length) {
      this._failures++;
      this._showError((failures[0].reason as Error).message);
      return Math.min(MAX_BACKOFF, RUNS_INTERVAL * 2 ** this._failures);
    }
    this._failures = 0;
    this._showError(null);
    return RUNS_INTERVAL;
  }

  private _showError(message: string | null): void {
    this._error.hidden = message === null;
    this._error.textContent = message ?? '';
  }

  private _showEnvironments(environments: IEnvironment[]): void {
    this._environments.show(environments);
  }

  private _showRuns(list: IRunList): void {
    // Durations of live runs count on from the server's clock at the time of the list.
    this._now = list.now;
    if (list.full) {
      this._runList.clear();
    }
    for (const run of list.runs) {
      this._runList.set(run.id, run);
    }
    // Newest first, as the server lists them; a changed run older than the newest
    // RUNS_LIMIT falls off as it would from a whole list.
    const runs = [...this._runList.values()]
      .sort((a, b) => b.created - a.created || (a.id < b.id ? 1 : -1))
      .slice(0, RUNS_LIMIT);
    this._runList = new Map(runs.map(run => [run.id, run]));
    this._cursor = list.cursor;
    this._runs.show(runs);
    this._showSelection();
  }

  private _environmentRow(env: IEnvironment): HTMLTableRowElement {
    const row = element('tr', 'mlmagic-environment');
    row.title = `${env.image}\nOpen to see its Dockerfile, packages and runs.`;
    row.dataset.environment = `${env.name}:${env.version}`;
    opens(row, () =>
      this.commands.execute(OPEN_ENVIRONMENT, { name: env.name, version: env.version })
    );
    row.append(
      element('td', 'mlmagic-name', env.name),
      element('td', 'mlmagic-version', `v${env.version}`),
      cell(badge(env.status))
    );
    return row;
  }

  private _duration(run: IRun): string {
    const end = run.ended ?? this._now;
    return formatDuration(run.started !== null ? end - run.started : null);
  }

  private _runRow(run: IRun): HTMLTableRowElement {
    const row = element('tr', 'mlmagic-run');
    row.dataset.runId = run.id;
    row.dataset.status = run.status;
    row.title = [
      run.id,
      `${run.script} on ${run.environment}`,
      `started ${new Date((run.started ?? run.created) * 1000).toLocaleString()}`,
      run.exit_code !== null ? `exit code ${run.exit_code}` : '',
      run.error ?? '',
      'Open it to see its details: metrics, files, models and log.'
    ]
      .filter(Boolean)
      .join('\n');
    const what = element('td', 'mlmagic-run-what');
    const title = element('div');
    title.append(element('span', 'mlmagic-experiment', run.experiment));
    if (run.name) {
      title.append(element('span', 'mlmagic-run-name', ` ${run.name}`));
    }
    const when = element('div', 'mlmagic-run-when');
    when.append(
      element('span', 'mlmagic-started', formatTime(run.started ?? run.created)),
      element('span', 'mlmagic-duration', this._duration(run))
    );
    what.append(title, when);
    const actions = element('td', 'mlmagic-actions');
    if (run.live) {
      const cancel = button('Cancel', 'mlmagic-cancel', `Cancel run ${run.id}`);
      cancel.disabled = run.cancel_requested;
      cancel.addEventListener('click', event => {
        event.stopPropagation();
        cancel.disabled = true;
        api.cancel(run.id).then(
          () => this.refresh(),
          error => {
            cancel.disabled = false;
            this._showError((error as Error).message);
          }
        );
      });
      actions.append(cancel);
    }
    if (run.script.endsWith('.ipynb') && (run.started !== null || !run.live)) {
      // A notebook run: its executed copy, read-only (written from its first cell on).
      const name = run.script.split('/').pop() ?? run.script;
      const open = button('Notebook', 'mlmagic-open-notebook', `Open the executed ${name}`);
      open.addEventListener('click', event => {
        event.stopPropagation();
        void this.commands.execute(OPEN_EXECUTED, { id: run.id, name });
      });
      actions.append(open);
    }
    const status = run.cancel_requested && run.live ? 'Canceling' : run.status;
    const pick = element('input', 'mlmagic-pick');
    pick.type = 'checkbox';
    pick.checked = this._selected.has(run.id);
    pick.title = `Tick runs to compare them (${run.id})`;
    pick.setAttribute('aria-label', `Compare run ${run.id}`);
    pick.addEventListener('click', event => event.stopPropagation());
    pick.addEventListener('change', () => {
      if (pick.checked) {
        this._selected.add(run.id);
      } else {
        this._selected.delete(run.id);
      }
      this._showSelection();
    });
    row.append(cell(pick), cell(badge(status, run.status)), what, actions);
    opens(row, () => this.commands.execute(OPEN_RUN, { id: run.id }));
    return row;
  }

  private _showSelection(): void {
    // Runs that fell off the list are no longer offered.
    for (const id of this._selected) {
      if (!this._runList.has(id)) {
        this._selected.delete(id);
      }
    }
    this._compare.disabled = this._selected.size < 2;
    this._compare.textContent = `Compare${this._selected.size ? ` (${this._selected.size})` : ''}`;
  }

  private _modelRow(model: IModel): HTMLTableRowElement {
    const row = element('tr', 'mlmagic-model');
    row.dataset.model = model.ref;
    const what = element('td', 'mlmagic-model-what');
    const title = element('div');
    title.append(element('span', 'mlmagic-name', model.name), element('span', 'mlmagic-version', ` v${model.version}`));
    const from = element('div', 'mlmagic-model-lineage');
    if (model.run_id) {
      const runId = model.run_id;
      from.append(
        linkButton(`run ${model.experiment ?? runId}`, `Open run ${runId}, which made it`, () => {
          void this.commands.execute(OPEN_RUN, { id: runId });
        })
      );
    } else {
      from.append(element('span', 'mlmagic-version', 'from a file'));
    }
    for (const service of model.services) {
      from.append(
        ' → ',
        linkButton(service, `The lineage of service ${service}, which serves it`, () => {
          void this.commands.execute(OPEN_LINEAGE, { service });
        })
      );
    }
    what.append(title, from);
    row.title = `${model.ref} · ${model.file}`;
    row.append(what);
    return row;
  }

  private _showServices(services: IService[]): void {
    this._services.show(services);
  }

  private _serviceRow(service: IService): HTMLTableRowElement {
    const row = element('tr', 'mlmagic-service');
    row.dataset.service = service.name;
    row.title = `models ${service.models}\nenvironment ${service.environment}`;
    const link = element('a', 'mlmagic-url', service.scoring_uri);
    link.href = service.url;
    link.target = '_blank';
    link.rel = 'noopener noreferrer';
    const remove = button('Delete', 'mlmagic-delete', `Delete service ${service.name}`);
    remove.addEventListener('click', () => void this._delete(service.name, remove));
    const what = element('td', 'mlmagic-service-what');
    what.append(element('div', 'mlmagic-name', service.name), link);
    link.addEventListener('click', event => event.stopPropagation());
    remove.addEventListener('click', event => event.stopPropagation());
    row.append(cell(badge(service.state)), what, cell(remove));
    row.title += '\nOpen to see its lineage: models, runs, environments, images.';
    opens(row, () => this.commands.execute(OPEN_LINEAGE, { service: service.name }));
    return row;
  }

  private async _delete(name: string, control: HTMLButtonElement): Promise<void> {
    const answer = await showDialog({
      title: `Delete the service ${name}?`,
      body: 'Its container and image are removed; its models stay registered.',
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
    });
    if (!answer.button.accept) {
      return;
    }
    control.disabled = true;
    try {
      await api.deleteService(name);
    } catch (error) {
      this._showError((error as Error).message);
    }
    this.refresh();
  }

  private readonly _workspace = element('span', 'mlmagic-workspace');
  private readonly _error = element('div', 'mlmagic-error');
  private readonly _environments = new KeyedTable<IEnvironment>({
    headings: ['Name', 'Version', 'Status'],
    empty: 'No environments yet: define one in a notebook with %%environment NAME.',
    key: env => `${env.name}:${env.version}`,
    render: env => this._environmentRow(env)
  });
  private readonly _compare = button(
    'Compare',
    'mlmagic-compare-button',
    'Compare the ticked runs: params, last metrics and overlaid charts'
  );
  private readonly _selected = new Set<string>();
  private readonly _models = new KeyedTable<IModel>({
    headings: ['Model'],
    empty: 'No models: run.register_model(NAME, "outputs/model.pkl") registers one.',
    key: model => model.ref,
    render: model => this._modelRow(model)
  });
  private readonly _runs = new KeyedTable<IRun>({
    headings: ['', 'Status', 'Run', ''],
    empty: 'No runs yet: %submit train.py --env NAME runs a script.',
    key: run => run.id,
    render: run => this._runRow(run),
    // The duration of a live run changes on every poll: it alone is updated in place.
    signature: run => JSON.stringify({ ...run, duration: null }),
    refresh: (row, run) => {
      row.querySelector('.mlmagic-duration')!.textContent = this._duration(run);
    }
  });
  private readonly _services = new KeyedTable<IService>({
    headings: ['State', 'Service', ''],
    empty: 'No services: %deploy NAME --model MODEL --entry score.py --env ENV serves a model.',
    key: service => service.name,
    render: service => this._serviceRow(service)
  });
  private readonly _poll: VisiblePoll;
  private _now = Date.now() / 1000;
  /** The runs listed, by id, and the cursor of the reply they are up to date with. */
  private _runList = new Map<string, IRun>();
  private _cursor: number | null = null;
  private _count = 0;
  private _failures = 0;
}

/** Make a row open something on a click, or on Enter or Space once it has the focus. */
function opens(row: HTMLTableRowElement, open: () => unknown): void {
  row.tabIndex = 0;
  row.classList.add('mlmagic-opens');
  row.addEventListener('click', () => void open());
  row.addEventListener('keydown', event => {
    if ((event.key === 'Enter' || event.key === ' ') && event.target === row) {
      event.preventDefault();
      void open();
    }
  });
}

function cell(child: HTMLElement): HTMLTableCellElement {
  const td = element('td');
  td.append(child);
  return td;
}

function button(label: string, className: string, title: string): HTMLButtonElement {
  const control = element('button', `jp-Button jp-mod-styled mlmagic-button ${className}`, label);
  control.title = title;
  return control;
}
