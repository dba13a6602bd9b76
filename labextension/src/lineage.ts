/**
 * Where things came from, in main-area tabs: a service back to its models, the runs that
 * made them, their environment versions and images (`LineageView`); and an environment
 * version's details: format, the Dockerfile that was built, resolved packages, size, the
 * runs and models that used it, and a diff with another version (`EnvironmentView`).
 *
 * Every run, environment version and service named is a button that opens its own view,
 * so lineage can be walked both ways. These records change rarely: each view reads them
 * when it is shown.
 */
import { CommandRegistry } from '@lumino/commands';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { api, IEnvironmentDetails, ILineage } from './api';
import { environmentArgs, OPEN_ENVIRONMENT, OPEN_LINEAGE, OPEN_RUN } from './commands';
import { badge, element, formatBytes, formatTime, linkButton } from './format';

/** Buttons that open the views of runs, environment versions and services. */
class Links {
  constructor(private readonly commands: CommandRegistry) {}

  run(id: string): HTMLElement {
    const control = linkButton(id, `Open run ${id}`, () => {
      void this.commands.execute(OPEN_RUN, { id });
    });
    control.dataset.run = id;
    return control;
  }

  environment(ref: string): HTMLElement {
    const args = environmentArgs(ref);
    if (!args) {
      return element('span', '', ref);
    }
    const control = linkButton(ref, `Open environment ${ref}`, () => {
      void this.commands.execute(OPEN_ENVIRONMENT, args);
    });
    control.dataset.environment = ref;
    return control;
  }

  service(name: string): HTMLElement {
    const control = linkButton(name, `The lineage of service ${name}`, () => {
      void this.commands.execute(OPEN_LINEAGE, { service: name });
    });
    control.dataset.service = name;
    return control;
  }
}

/** A labelled step of a lineage chain. */
function step(kind: string, ...content: (HTMLElement | string)[]): HTMLElement {
  const node = element('div', `mlmagic-lineage-step mlmagic-lineage-${kind}`);
  node.append(element('span', 'mlmagic-lineage-kind', kind), ...content);
  return node;
}

/** A view that reads its data each time it is shown. */
abstract class RecordView<T> extends Widget {
  constructor(protected readonly commands: CommandRegistry) {
    super();
    this._error.hidden = true;
    this.node.append(this._error, this.body);
  }

  protected abstract load(): Promise<T>;
  protected abstract render(data: T): void;

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this.refresh();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    // Attached already shown (as JupyterLab restores its layout): no show comes.
    if (this.isVisible) {
      void this.refresh();
    }
  }

  async refresh(): Promise<void> {
    try {
      this.render(await this.load());
      this._error.hidden = true;
    } catch (error) {
      this._error.hidden = false;
      this._error.textContent = (error as Error).message;
    }
  }

  protected readonly links = new Links(this.commands);
  protected readonly body = element('div', 'mlmagic-record-body');
  private readonly _error = element('div', 'mlmagic-error');
}

export class LineageView extends RecordView<ILineage> {
  constructor(
    readonly service: string,
    commands: CommandRegistry
  ) {
    super(commands);
    this.addClass('mlmagic-lineage');
    this.node.dataset.service = service;
  }

  protected load(): Promise<ILineage> {
    return api.lineage(this.service);
  }

  protected render(lineage: ILineage): void {
    const { service } = lineage;
    const head = step(
      'service',
      element('strong', '', service.name),
      badge(service.state),
      element('span', 'mlmagic-muted-text', `${service.target} · ${service.url}`)
    );
    const serving = step('serves in', this.links.environment(service.environment));
    if (service.image) {
      serving.append(element('code', '', service.image));
    }
    const chains = lineage.models.map(model => {
      const chain = element('div', 'mlmagic-lineage-chain');
      chain.dataset.model = model.ref;
      chain.append(step('model', element('strong', '', model.ref), model.file ?? ''));
      if (model.missing) {
        chain.append(element('p', 'mlmagic-empty', 'This model version is no longer registered.'));
        return chain;
      }
      if (!model.run) {
        chain.append(
          element('p', 'mlmagic-empty', 'Registered from a file, not from a run.')
        );
        return chain;
      }
      chain.append(
        step('run', this.links.run(model.run.id), badge(model.run.status), model.run.experiment),
        step('environment', this.links.environment(model.run.environment)),
        step('image', element('code', '', model.run.image ?? model.run_environment?.image ?? ''))
      );
      return chain;
    });
    this.body.replaceChildren(
      head,
      serving,
      element('h3', 'mlmagic-section-title', 'Models, and where they came from'),
      ...(chains.length ? chains : [element('p', 'mlmagic-empty', 'It serves no model.')])
    );
  }
}

export class EnvironmentView extends RecordView<IEnvironmentDetails> {
  constructor(
    readonly name: string,
    readonly version: number,
    commands: CommandRegistry
  ) {
    super(commands);
    this.addClass('mlmagic-environment-view');
    this.node.dataset.environment = `${name}:${version}`;
  }

  protected load(): Promise<IEnvironmentDetails> {
    return api.environment(this.name, this.version);
  }

  protected render(env: IEnvironmentDetails): void {
    const facts = element('dl', 'mlmagic-facts');
    const fact = (term: string, value: string | HTMLElement): void => {
      const dd = element('dd');
      dd.append(value);
      facts.append(element('dt', '', term), dd);
    };
    fact('status', badge(env.status));
    fact('format', env.format);
    fact(env.venv ? 'virtual environment' : 'image', env.venv ?? env.image);
    fact('size', formatBytes(env.size));
    fact('created', formatTime(env.created));
    if (env.error) {
      fact('error', env.error);
    }
    const runs = element('ul', 'mlmagic-plain-list mlmagic-environment-runs');
    for (const run of env.runs) {
      const item = element('li');
      item.append(this.links.run(run.id), ' ', badge(run.status), ` ${run.experiment}`);
      runs.append(item);
    }
    const models = element('ul', 'mlmagic-plain-list');
    for (const model of env.models) {
      const item = element('li', '', `${model.ref} `);
      model.services.forEach(s => item.append(this.links.service(s), ' '));
      models.append(item);
    }
    const packages = element('pre', 'mlmagic-code mlmagic-packages');
    packages.textContent = env.packages?.join('\n') || 'Not resolved yet: known once built.';
    const dockerfile = element('pre', 'mlmagic-code mlmagic-dockerfile');
    dockerfile.textContent = env.dockerfile;
    this.body.replaceChildren(
      element('h2', 'mlmagic-compare-title', env.ref),
      facts,
      element('h3', 'mlmagic-section-title', 'Compare with another version'),
      this._diffControls(env),
      element('h3', 'mlmagic-section-title', `Runs (${env.runs.length})`),
      env.runs.length ? runs : element('p', 'mlmagic-empty', 'No run used it yet.'),
      element('h3', 'mlmagic-section-title', 'Models trained in it'),
      env.models.length ? models : element('p', 'mlmagic-empty', 'None.'),
      element('h3', 'mlmagic-section-title', 'Resolved packages'),
      packages,
      element('h3', 'mlmagic-section-title', 'Dockerfile'),
      dockerfile
    );
  }

  private _diffControls(env: IEnvironmentDetails): HTMLElement {
    const box = element('div', 'mlmagic-diff');
    const others = env.versions.filter(v => v !== env.version);
    if (!others.length) {
      box.append(element('p', 'mlmagic-empty', 'This is the only version.'));
      return box;
    }
    const select = element('select', 'mlmagic-diff-with');
    select.setAttribute('aria-label', 'The version to compare with');
    select.append(element('option', '', 'choose a version'));
    for (const version of others) {
      const option = element('option', '', `${env.name}:${version}`);
      option.value = String(version);
      select.append(option);
    }
    const output = element('div', 'mlmagic-diff-output');
    select.addEventListener('change', () => {
      const other = Number(select.value);
      if (!other) {
        output.replaceChildren();
        return;
      }
      // From the older version to the newer, whichever is this one.
      const [older, newer] = [Math.min(env.version, other), Math.max(env.version, other)];
      api.environmentDiff(env.name, newer, older).then(
        diff => {
          output.replaceChildren(
            diffBlock('packages', diff.packages),
            diffBlock('Dockerfile', diff.dockerfile)
          );
        },
        error => output.replaceChildren(element('p', 'mlmagic-error', (error as Error).message))
      );
    });
    box.append(select, output);
    return box;
  }
}

/** A unified diff with its added and removed lines marked. */
function diffBlock(what: string, diff: string): HTMLElement {
  const block = element('pre', 'mlmagic-code mlmagic-diff-text');
  block.dataset.what = what;
  if (!diff) {
    block.textContent = `The ${what} are the same.`;
    return block;
  }
  for (const line of diff.split('\n')) {
    const kind =
      line.startsWith('+') && !line.startsWith('+++')
        ? 'mlmagic-diff-added'
        : line.startsWith('-') && !line.startsWith('---')
          ? 'mlmagic-diff-removed'
          : '';
    block.append(element('span', kind, line + '\n'));
  }
  return block;
}
