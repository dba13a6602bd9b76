/**
 * The studio plugin: the commands that open a run's details, a comparison of runs, a
 * service's lineage and an environment version, each in a main-area tab (one tab per
 * thing: opening it again shows the tab already open), restored with the layout.
 */
import {
  ILayoutRestorer,
  IRouter,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, InputDialog, MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import {
  COMPARE_RUNS,
  DETAILS_QUERY,
  environmentArgs,
  OPEN_ENVIRONMENT,
  OPEN_LINEAGE,
  OPEN_RUN,
  OPEN_RUN_PROMPT
} from './commands';
import { CompareView } from './compare';
import { RunDetailsView } from './details';
import { EnvironmentView, LineageView } from './lineage';

/** A main-area tab per key: opened once, activated when asked again. */
class Tabs<T extends Widget> {
  constructor(
    private readonly app: JupyterFrontEnd,
    namespace: string,
    private readonly icon: LabIcon | undefined
  ) {
    this.tracker = new WidgetTracker<MainAreaWidget<T>>({ namespace });
  }

  readonly tracker: WidgetTracker<MainAreaWidget<T>>;

  open(key: string, label: string, caption: string, make: () => T): MainAreaWidget<T> {
    const open = this.tracker.find(widget => widget.content.node.dataset.key === key);
    if (open) {
      this.app.shell.activateById(open.id);
      return open;
    }
    const content = make();
    content.node.dataset.key = key;
    const widget = new MainAreaWidget({ content });
    widget.id = `mlmagic-${this.tracker.namespace}-${key.replace(/[^\w-]/g, '_')}`;
    widget.title.label = label;
    widget.title.caption = caption;
    widget.title.icon = this.icon;
    widget.title.closable = true;
    void this.tracker.add(widget);
    this.app.shell.add(widget, 'main');
    this.app.shell.activateById(widget.id);
    return widget;
  }
}

/** Make the studio's plugin, with the panel's icon on its tabs. */
export function studioPlugin(icon: LabIcon): JupyterFrontEndPlugin<void> {
  return {
    id: 'mlmagic:studio',
    description: 'Run details, run comparison, lineage and environment versions in tabs.',
    autoStart: true,
    optional: [IRenderMimeRegistry, ILayoutRestorer, ICommandPalette, IRouter],
    activate: (
      app: JupyterFrontEnd,
      rendermime: IRenderMimeRegistry | null,
      restorer: ILayoutRestorer | null,
      palette: ICommandPalette | null,
      router: IRouter | null
    ) => {
      const { commands } = app;
      const runs = new Tabs<RunDetailsView>(app, 'run', icon);
      const comparisons = new Tabs<CompareView>(app, 'compare', icon);
      const lineages = new Tabs<LineageView>(app, 'lineage', icon);
      const environments = new Tabs<EnvironmentView>(app, 'environment', icon);

      commands.addCommand(OPEN_RUN, {
        label: args => (args.id ? `Run ${args.id}` : 'Run details'),
        caption: "Open a run's details: status, stages, metric charts, files, models, log",
        execute: args => {
          // From the run widget's link, `?mlmagic-details=<id>`, through the router.
          const linked = new URLSearchParams(String(args.search ?? '')).get(DETAILS_QUERY);
          const id = String(args.id ?? linked);
          return runs.open(id, id, `The details of run ${id}`, () =>
            new RunDetailsView(id, commands, rendermime)
          );
        }
      });
      commands.addCommand(OPEN_RUN_PROMPT, {
        label: 'Open run…',
        caption: "Open a run's details by its id",
        execute: async () => {
          const answer = await InputDialog.getText({
            title: 'Open run',
            label: 'Run id (as %runs lists it)',
            placeholder: 'default_20240101-120000_ab12cd'
          });
          const id = answer.value?.trim();
          if (answer.button.accept && id) {
            return commands.execute(OPEN_RUN, { id });
          }
        }
      });
      commands.addCommand(COMPARE_RUNS, {
        label: 'Compare runs',
        caption: 'Compare runs: params, last metric values and overlaid charts',
        execute: args => {
          const ids = (args.ids as string[]).map(String);
          const key = ids.join(',');
          return comparisons.open(key, `Compare ${ids.length} runs`, ids.join('\n'), () =>
            new CompareView(ids, commands, rendermime)
          );
        }
      });
      commands.addCommand(OPEN_LINEAGE, {
        label: args => `Lineage of ${args.service ?? 'a service'}`,
        caption: 'A service back to its models, runs, environments and images',
        execute: args => {
          const service = String(args.service);
          return lineages.open(service, `⤺ ${service}`, `The lineage of ${service}`, () =>
            new LineageView(service, commands)
          );
        }
      });
      commands.addCommand(OPEN_ENVIRONMENT, {
        label: args => `Environment ${args.name ?? ''}:${args.version ?? ''}`,
        caption: 'An environment version: Dockerfile, packages, size, runs; a diff',
        execute: args => {
          const name = String(args.name);
          const version = Number(args.version);
          const ref = `${name}:${version}`;
          return environments.open(ref, ref, `Environment ${ref}`, () =>
            new EnvironmentView(name, version, commands)
          );
        }
      });
      palette?.addItem({ command: OPEN_RUN_PROMPT, category: 'mlmagic' });
      router?.register({ command: OPEN_RUN, pattern: new RegExp(`[?&]${DETAILS_QUERY}=`) });
      // The widget's link, clicked in this page, opens the tab here rather than a second
      // JupyterLab in a new browser tab (a modified or middle click still does that).
      document.addEventListener('click', event => {
        const link = (event.target as Element | null)?.closest?.('a[href]');
        if (!(link instanceof HTMLAnchorElement) || event.button !== 0) {
          return;
        }
        if (event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) {
          return;
        }
        const url = new URL(link.href);
        const id = url.searchParams.get(DETAILS_QUERY);
        if (id && url.origin === window.location.origin) {
          event.preventDefault();
          void commands.execute(OPEN_RUN, { id });
        }
      });

      if (restorer) {
        /** The key a tab was opened with (kept on its content's node). */
        const key = (widget: MainAreaWidget<Widget>) => widget.content.node.dataset.key ?? '';
        void restorer.restore(runs.tracker, {
          command: OPEN_RUN,
          args: widget => ({ id: key(widget) }),
          name: widget => key(widget)
        });
        void restorer.restore(lineages.tracker, {
          command: OPEN_LINEAGE,
          args: widget => ({ service: key(widget) }),
          name: widget => key(widget)
        });
        void restorer.restore(environments.tracker, {
          command: OPEN_ENVIRONMENT,
          args: widget => ({ ...environmentArgs(key(widget)) }),
          name: widget => key(widget)
        });
      }
    }
  };
}
