/**
 * "Submit as run…": run a notebook top to bottom as an mlmagic run, from the notebook's
 * toolbar, the file browser's context menu or the command palette, and open the executed
 * copy of a notebook run (read-only) through the `mlmagic-run:` drive.
 *
 * The dialog starts from `GET notebook-runs/defaults` (the environments, the values of
 * the notebook's `parameters` cell, and where it can run: this machine's targets and the
 * workspace's computes) and submits with `POST notebook-runs` (mlmagic/server/submit.py);
 * the run then shows in the side panel and its log opens. Each compute's state comes
 * from `GET computes` (mlmagic/server/computes.py) once the dialog is open, since asking a
 * cluster can take as long as its timeout.
 *
 * "Re-run…" (a run's details) uses the same dialog, started from `GET runs/<id>/rerun`
 * (the run's options, where it ran chosen; arguments instead of parameters for a script,
 * and its tags) and submitted with `POST runs/<id>/rerun` (mlmagic/server/rerun.py): a
 * new run of the code that ran, whose details tab then opens.
 */
import { IRouter, JupyterFrontEnd } from '@jupyterlab/application';
import {
  Dialog,
  ICommandPalette,
  ToolbarButton,
  showDialog,
  showErrorMessage
} from '@jupyterlab/apputils';
import { DocumentRegistry, DocumentWidget } from '@jupyterlab/docregistry';
import { Contents, ServerConnection } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { IEnvironment, IRun, request } from './api';
import { OPEN_RUN, RERUN_RUN } from './commands';
import { OPEN_LOG } from './panel';

/** The command that submits a notebook (`path`, else the current one). */
export const SUBMIT_NOTEBOOK = 'mlmagic:submit-notebook';
/** The command that opens the executed copy of a notebook run (`id`, `name`). */
export const OPEN_EXECUTED = 'mlmagic:open-executed-notebook';
/** The drive of executed copies: `mlmagic-run:<run id>/<name>.ipynb`. */
export const DRIVE = 'mlmagic-run';

/** A compute of the workspace, as stored (`name`, `kind`: ray or docker, `address`). */
interface ICompute {
  name: string;
  kind: string;
  address: string;
}

/** A compute with its `state`, asked now: `up`, or `unreachable: why`. */
interface IComputeState extends ICompute {
  state: string;
}

/** What the dialog starts from: a notebook's defaults, or a run's options to re-run. */
interface IDefaults {
  environments: IEnvironment[];
  /** A notebook's values (`name: literal`); null: a notebook with no parameters cell. */
  parameters: Record<string, string> | null;
  /** False for a script: arguments instead of parameters. */
  notebook?: boolean;
  /** Where a run can go: this machine's targets and the workspace's computes. */
  targets: string[];
  computes: ICompute[];
  /** A notebook's: the workspace's default target (null: none yet); a run's: its own. */
  target?: string | null;
  /** The rest are a run's options (`GET runs/<id>/rerun`). */
  compute?: string | null;
  environment?: string;
  experiment?: string;
  args?: string;
  gpus?: string;
  tags?: Record<string, string>;
}

/** What the dialog gives back: only the fields it shows. */
type Submission = Record<string, string | Record<string, string>>;

/** `name = value` lines → `{ name: value }`; a line with no `=` is sent as a name alone
 * for the server to refuse in the user's words. */
function parseLines(text: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const at = line.indexOf('=');
    if (line.trim() && at > 0) {
      values[line.slice(0, at).trim()] = line.slice(at + 1).trim();
    } else if (line.trim()) {
      values[line.trim()] = '';
    }
  }
  return values;
}

function lines(values: Record<string, string>): string {
  return Object.entries(values)
    .map(([name, value]) => `${name} = ${value}`)
    .join('\n');
}

/** The form of the submit and re-run dialogs; `getValue` reads it. */
class SubmitForm extends Widget implements Dialog.IBodyWidget<Submission> {
  constructor(defaults: IDefaults, rerun: boolean) {
    super();
    this.addClass('mlmagic-submit-form');
    const notebook = defaults.notebook ?? true;
    const names = [...new Set(defaults.environments.map(e => e.name))];
    // A re-run starts from the version that ran; a name alone means its newest.
    const choices = defaults.environment ? [defaults.environment, ...names] : names;
    // Laid out here: the extension's style sheets are another module's.
    this.node.style.cssText = 'display:grid;gap:8px;min-width:24em';
    this.node.innerHTML = `
      <label>Environment <select name="environment"></select></label>
      <label>Experiment <input name="experiment"></label>
      ${
        notebook
          ? `<label>Parameters <small>(one <code>name = literal</code> a line)</small>
        <textarea name="parameters" rows="5"></textarea></label>`
          : '<label>Arguments <input name="args"></label>'
      }
      <label>GPUs <input name="gpus"></label>
      <label>Where <select name="where"></select></label>
      ${
        rerun
          ? `<label>Tags <small>(one <code>key = value</code> a line)</small>
        <textarea name="tags" rows="3"></textarea></label>`
          : ''
      }
      <p class="mlmagic-submit-note"></p>`;
    const select = this.field<HTMLSelectElement>('environment');
    for (const name of new Set(choices)) {
      const option = document.createElement('option');
      option.value = option.textContent = name;
      select.appendChild(option);
    }
    this.addPlaces(defaults, rerun);
    this.field<HTMLInputElement>('experiment').value = defaults.experiment ?? 'default';
    this.field<HTMLInputElement>('gpus').value = defaults.gpus ?? 'none';
    this.setField('parameters', lines(defaults.parameters ?? {}));
    this.setField('args', defaults.args ?? '');
    this.setField('tags', lines(defaults.tags ?? {}));
    const note = this.node.querySelector('.mlmagic-submit-note') as HTMLElement;
    note.textContent = !choices.length
      ? 'The workspace has no environment yet: make one with %%environment first.'
      : rerun
        ? 'Runs the code of that run again (its snapshot), not the folder as it is now.'
        : defaults.parameters === null
          ? "The notebook has no cell tagged 'parameters': parameters go into a new first cell."
          : '';
  }

  getValue(): Submission {
    const value: Submission = {};
    for (const name of ['environment', 'experiment', 'gpus', 'args']) {
      const field = this.node.querySelector(`[name="${name}"]`) as HTMLInputElement | null;
      if (field) {
        value[name] = field.value.trim();
      }
    }
    const where = this.field<HTMLSelectElement>('where').value;
    if (where) {
      // `target:NAME` or `compute:NAME`: the one field the server takes for it.
      const at = where.indexOf(':');
      value[where.slice(0, at)] = where.slice(at + 1);
    }
    for (const name of ['parameters', 'tags']) {
      const field = this.node.querySelector(`[name="${name}"]`) as HTMLTextAreaElement | null;
      if (field) {
        value[name] = parseLines(field.value);
      }
    }
    return value;
  }

  /** Fill the Where select: this machine's targets, then the computes; chosen, the
   * workspace's default target, or where the re-run's run ran (its compute, else its
   * target, offered even when it is no longer there, for the server to say so). Each
   * compute's state follows when `GET computes` answers. */
  private addPlaces(defaults: IDefaults, rerun: boolean): void {
    const select = this.field<HTMLSelectElement>('where');
    const add = (parent: HTMLElement, value: string, label: string, title = ''): void => {
      const option = document.createElement('option');
      option.value = value;
      option.textContent = label;
      option.title = title;
      parent.appendChild(option);
    };
    const group = (label: string): HTMLOptGroupElement => {
      const element = document.createElement('optgroup');
      element.label = label;
      select.appendChild(element);
      return element;
    };
    const here = group('This machine');
    for (const name of defaults.targets) {
      const isDefault = !rerun && name === defaults.target;
      add(here, `target:${name}`, isDefault ? `${name} (the workspace's default)` : name);
    }
    const there = group('Computes');
    for (const compute of defaults.computes) {
      add(there, `compute:${compute.name}`, `${compute.name} (${compute.kind})`, compute.address);
    }
    const chosen = defaults.compute
      ? `compute:${defaults.compute}`
      : defaults.target
        ? `target:${defaults.target}`
        : '';
    if (chosen && !select.querySelector(`option[value="${CSS.escape(chosen)}"]`)) {
      add(chosen.startsWith('compute:') ? there : here, chosen, chosen.split(':')[1]);
    }
    if (!there.children.length) {
      there.remove();
    }
    if (chosen) {
      select.value = chosen;
    }
    if (defaults.computes.length) {
      void this.showStates(select);
    }
  }

  /** Add each compute's state to its option: `far (ray: up)`, the whole line as its
   * tooltip. A failed request leaves the options as they are: the submission says more. */
  private async showStates(select: HTMLSelectElement): Promise<void> {
    let computes: IComputeState[];
    try {
      computes = (await request<{ computes: IComputeState[] }>(['computes'])).computes;
    } catch {
      return;
    }
    for (const compute of computes) {
      const option = select.querySelector(
        `option[value="compute:${CSS.escape(compute.name)}"]`
      ) as HTMLOptionElement | null;
      if (option) {
        const state = compute.state.split(':')[0];
        option.textContent = `${compute.name} (${compute.kind}: ${state})`;
        option.title = `${compute.address}: ${compute.state}`;
        option.dataset.state = state;
      }
    }
  }

  private setField(name: string, value: string): void {
    const field = this.node.querySelector(`[name="${name}"]`) as HTMLInputElement | null;
    if (field) {
      field.value = value;
    }
  }

  private field<T extends HTMLElement>(name: string): T {
    return this.node.querySelector(`[name="${name}"]`) as T;
  }
}

/** Show the dialog from `defaults`, then POST its values to `route`; the run, or null. */
async function submitFromDialog(
  title: string,
  defaults: IDefaults,
  route: string[],
  extra: Record<string, string>,
  rerun: boolean
): Promise<IRun | null> {
  const result = await showDialog<Submission>({
    title,
    body: new SubmitForm(defaults, rerun),
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Submit' })]
  });
  if (!result.button.accept || result.value === null) {
    return null;
  }
  return request<IRun>(route, {
    method: 'POST',
    body: JSON.stringify({ ...extra, ...result.value })
  });
}

/** Ask for the run's settings, submit `path`, and show the run; the run, or null. */
export async function submitNotebook(
  app: JupyterFrontEnd,
  path: string
): Promise<IRun | null> {
  try {
    const defaults = await request<IDefaults>(['notebook-runs', 'defaults'], {}, { path });
    const run = await submitFromDialog(
      `Submit ${path} as a run`,
      defaults,
      ['notebook-runs'],
      { path },
      false
    );
    if (run) {
      app.shell.activateById('mlmagic-panel');
      void app.commands.execute(OPEN_LOG, { id: run.id });
    }
    return run;
  } catch (error) {
    void showErrorMessage('Submit as run', (error as Error).message);
    return null;
  }
}

/** Ask for changes to run `id`'s options, re-run its snapshot, and open the new run's
 * details; the new run, or null. */
export async function rerunRun(app: JupyterFrontEnd, id: string): Promise<IRun | null> {
  try {
    const defaults = await request<IDefaults & { script: string }>(['runs', id, 'rerun']);
    const run = await submitFromDialog(
      `Re-run ${defaults.script} of ${id}`,
      defaults,
      ['runs', id, 'rerun'],
      {},
      true
    );
    if (run) {
      void app.commands.execute(OPEN_RUN, { id: run.id });
    }
    return run;
  } catch (error) {
    void showErrorMessage('Re-run', (error as Error).message);
    return null;
  }
}

/** Read-only executed copies of notebook runs, as JupyterLab opens documents. */
export class ExecutedNotebooks implements Contents.IDrive {
  readonly name = DRIVE;
  readonly serverSettings = ServerConnection.makeSettings();
  private _changed = new Signal<this, Contents.IChangedArgs>(this);
  private _disposed = false;

  get fileChanged(): ISignal<this, Contents.IChangedArgs> {
    return this._changed;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  dispose(): void {
    this._disposed = true;
    Signal.clearData(this);
  }

  async get(localPath: string): Promise<Contents.IModel> {
    const id = localPath.split('/')[0];
    const model = await request<Contents.IModel>(['runs', id, 'notebook']);
    return { ...model, path: `${DRIVE}:${model.path}` } as Contents.IModel;
  }

  async getDownloadUrl(localPath: string): Promise<string> {
    return this.readOnly();
  }

  newUntitled(): Promise<Contents.IModel> {
    return this.readOnly();
  }

  delete(): Promise<void> {
    return this.readOnly();
  }

  rename(): Promise<Contents.IModel> {
    return this.readOnly();
  }

  save(): Promise<Contents.IModel> {
    return this.readOnly();
  }

  copy(): Promise<Contents.IModel> {
    return this.readOnly();
  }

  async createCheckpoint(): Promise<Contents.ICheckpointModel> {
    return { id: 'executed', last_modified: new Date().toISOString() };
  }

  async listCheckpoints(): Promise<Contents.ICheckpointModel[]> {
    return [];
  }

  restoreCheckpoint(): Promise<void> {
    return this.readOnly();
  }

  deleteCheckpoint(): Promise<void> {
    return this.readOnly();
  }

  private async readOnly(): Promise<never> {
    throw new Error(
      'The executed copy of a run is read-only: save it elsewhere with File › Save As… ' +
        'or download it with run.download().'
    );
  }
}

/** Whether `path` is a notebook the server can submit: not an executed copy, which
 * lives in a run (`mlmagic-run:`), not in the server's folder. */
function submittable(path: string): boolean {
  return path.endsWith('.ipynb') && !path.startsWith(`${DRIVE}:`);
}

/** The path of the submittable notebook shown in the main area, or null. */
function currentNotebook(app: JupyterFrontEnd): string | null {
  const widget = app.shell.currentWidget;
  if (widget instanceof DocumentWidget && submittable(widget.context.path)) {
    return widget.context.path;
  }
  return null;
}

/** Add the commands, the toolbar button, the menu item and the drive to `app`. */
export function activateSubmit(
  app: JupyterFrontEnd,
  palette: ICommandPalette | null,
  router: IRouter | null
): void {
  app.serviceManager.contents.addDrive(new ExecutedNotebooks());

  app.commands.addCommand(SUBMIT_NOTEBOOK, {
    label: 'Submit as run…',
    caption: 'Run this notebook top to bottom as an mlmagic run, with parameters',
    isEnabled: args =>
      !!args.path || !!args.fromBrowser || currentNotebook(app) !== null,
    execute: async args => {
      let path = (args.path as string) || currentNotebook(app);
      if (!path && args.fromBrowser) {
        // The file browser's selection opens first; its document names the path.
        await app.commands.execute('filebrowser:open');
        path = currentNotebook(app);
      }
      return path ? submitNotebook(app, path) : null;
    }
  });

  app.commands.addCommand(OPEN_EXECUTED, {
    label: 'Open executed notebook',
    caption: 'The notebook as the run executed it (read-only)',
    execute: args => {
      // From a link (the run widget's): `?mlmagic-run=<run id>/<name>` in the URL.
      const linked = new URLSearchParams(String(args.search ?? '')).get(DRIVE);
      const path = linked ?? `${args.id}/${args.name}`;
      return app.commands.execute('docmanager:open', {
        path: `${DRIVE}:${path}`,
        factory: 'Notebook'
      });
    }
  });
  router?.register({ command: OPEN_EXECUTED, pattern: /[?&]mlmagic-run=/ });

  app.commands.addCommand(RERUN_RUN, {
    label: 'Re-run…',
    caption: "Run a run's code again (its snapshot) with its options, changed in a dialog",
    execute: args => rerunRun(app, String(args.id))
  });

  app.docRegistry.addWidgetExtension('Notebook', {
    createNew: (widget: DocumentWidget, context: DocumentRegistry.Context) => {
      if (!submittable(context.path)) {
        return; // an executed copy: Re-run, in its run's details, runs it again
      }
      const button = new ToolbarButton({
        className: 'mlmagic-submit-button',
        label: 'Submit as run…',
        tooltip: 'Run this notebook as an mlmagic run, with parameters',
        onClick: () => void submitNotebook(app, context.path)
      });
      widget.toolbar.insertItem(10, 'mlmagicSubmit', button);
      return button;
    }
  } as DocumentRegistry.WidgetExtension);

  app.contextMenu.addItem({
    command: SUBMIT_NOTEBOOK,
    args: { fromBrowser: true },
    selector: '.jp-DirListing-item[data-file-type="notebook"]',
    rank: 12
  });
  palette?.addItem({ command: SUBMIT_NOTEBOOK, category: 'mlmagic' });
}
