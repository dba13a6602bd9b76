/**
 * The log of one run, in a main-area tab, following a live run.
 *
 * It asks the log offset protocol for what was printed since the last request: every
 * second while the run is live and the tab is visible, at once again while there is more
 * to read, and not at all once the run has ended and its whole log is shown. The view
 * follows the tail unless the user scrolled up.
 */
import { Widget } from '@lumino/widgets';

import { api, apiUrl, ILogChunk } from './api';
import { badge, element, terminalLine } from './format';
import { VisiblePoll } from './poll';

/** Milliseconds between two requests while a run is live. */
export const LOG_INTERVAL = 1000;

export class RunLogView extends Widget {
  constructor(readonly runId: string) {
    super();
    this.addClass('mlmagic-log');
    this.node.dataset.runId = runId;
    const header = element('div', 'mlmagic-log-header');
    const raw = element('a', 'mlmagic-log-raw', 'raw log');
    raw.href = apiUrl('runs', runId, 'log');
    raw.target = '_blank';
    raw.rel = 'noopener';
    raw.title = 'The whole log as plain text, in a new browser tab';
    this._cancel.addEventListener('click', () => void this._cancelRun());
    this._cancel.hidden = true;
    header.append(element('span', 'mlmagic-log-id', runId), this._status, this._cancel, raw);
    this._text.append(this._lines, this._partial);
    this.node.append(header, this._error, this._text);
    this._error.hidden = true;
    this._poll = new VisiblePoll(this, () => this._tick());
  }

  /** The whole log has been read and the run has ended. */
  get complete(): boolean {
    return this._poll.done;
  }

  private async _tick(): Promise<number | null> {
    let chunk: ILogChunk;
    try {
      chunk = await api.log(this.runId, this._offset);
    } catch (error) {
      this._error.hidden = false;
      this._error.textContent = (error as Error).message;
      return LOG_INTERVAL * 5;
    }
    this._error.hidden = true;
    this._append(chunk.text);
    this._offset = chunk.offset;
    this._showStatus(chunk.status, chunk.live);
    if (chunk.offset < chunk.size) {
      return 0; // more is written already
    }
    if (!chunk.live) {
      this._partialText = '';
      return null;
    }
    return LOG_INTERVAL;
  }

  private _append(text: string): void {
    if (!text) {
      return;
    }
    const scroller = this._text;
    const atEnd = scroller.scrollTop + scroller.clientHeight >= scroller.scrollHeight - 8;
    const lines = (this._partialText + text).split('\n');
    this._partialText = lines.pop() ?? '';
    if (lines.length) {
      this._lines.append(document.createTextNode(lines.map(terminalLine).join('\n') + '\n'));
    }
    this._partial.textContent = terminalLine(this._partialText);
    if (atEnd) {
      scroller.scrollTop = scroller.scrollHeight;
    }
  }

  private _showStatus(status: string, live: boolean): void {
    if (status !== this._status.dataset.status) {
      this._status.dataset.status = status;
      this._status.replaceChildren(badge(status));
    }
    this._cancel.hidden = !live;
  }

  private async _cancelRun(): Promise<void> {
    this._cancel.disabled = true;
    try {
      await api.cancel(this.runId);
    } catch (error) {
      this._error.hidden = false;
      this._error.textContent = (error as Error).message;
      this._cancel.disabled = false;
    }
  }

  private readonly _status = element('span', 'mlmagic-log-status');
  private readonly _cancel = element(
    'button',
    'jp-Button jp-mod-styled mlmagic-button mlmagic-cancel',
    'Cancel'
  );
  private readonly _error = element('div', 'mlmagic-error');
  private readonly _text = element('pre', 'mlmagic-log-text');
  private readonly _lines = element('span');
  private readonly _partial = element('span');
  private readonly _poll: VisiblePoll;
  private _offset = 0;
  private _partialText = '';
}
