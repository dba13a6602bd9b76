/**
 * mlmagic's JupyterLab extension: a side panel of the workspace's environments, runs and
 * services, and a main-area tab per run log. Works in JupyterLab 4 and Notebook 7.
 */
import {
  ILayoutRestorer,
  IRouter,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { LabIcon } from '@jupyterlab/ui-components';

import { RunLogView } from './log';
import { MlmagicPanel, OPEN_LOG } from './panel';
import { activateSubmit } from './submit';
import { studioPlugin } from './studio';

const ICON = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M9 2h6v2h-1v5.3l5.6 9.4A2 2 0 0 1 17.9 22H6.1a2 2 0 0 1-1.7-3.3L10 9.3V4H9zm3 9.6L8.8 17h6.4z"/>
    <path d="M19 3l.6 1.4L21 5l-1.4.6L19 7l-.6-1.4L17 5l1.4-.6z"/>
  </g>
</svg>`;

export const mlmagicIcon = new LabIcon({ name: 'mlmagic:icon', svgstr: ICON });

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'mlmagic:plugin',
  description: 'A side panel of the environments, runs and services of an mlmagic workspace.',
  autoStart: true,
  optional: [ILayoutRestorer, ICommandPalette, IRouter],
  activate: (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    router: IRouter | null
  ) => {
    const tracker = new WidgetTracker<MainAreaWidget<RunLogView>>({
      namespace: 'mlmagic-log'
    });

    app.commands.addCommand(OPEN_LOG, {
      label: args => `Log of run ${args.id ?? ''}`,
      caption: "Open a run's log in a tab that follows the run",
      execute: args => {
        const id = String(args.id);
        const open = tracker.find(widget => widget.content.runId === id);
        if (open) {
          app.shell.activateById(open.id);
          return open;
        }
        const content = new RunLogView(id);
        const widget = new MainAreaWidget({ content });
        widget.id = `mlmagic-log-${id}`;
        widget.title.label = id;
        widget.title.caption = `The log of run ${id}`;
        widget.title.icon = mlmagicIcon;
        widget.title.closable = true;
        void tracker.add(widget);
        app.shell.add(widget, 'main');
        app.shell.activateById(widget.id);
        return widget;
      }
    });

    activateSubmit(app, palette, router);

    const panel = new MlmagicPanel(app.commands);
    panel.id = 'mlmagic-panel';
    panel.title.icon = mlmagicIcon;
    panel.title.caption = 'mlmagic: environments, runs and services';
    app.shell.add(panel, 'left', { rank: 600 });

    if (restorer) {
      restorer.add(panel, 'mlmagic-panel');
      void restorer.restore(tracker, {
        command: OPEN_LOG,
        args: widget => ({ id: widget.content.runId }),
        name: widget => widget.content.runId
      });
    }
  }
};

export default [plugin, studioPlugin(mlmagicIcon)];
