/**
 * Polling that runs only while a widget is visible.
 *
 * A VisiblePoll follows its widget's lifecycle itself, through a Lumino message hook:
 * it ticks when the widget is shown or attached where it can be seen, stops when it is
 * hidden or detached, and ends with it. A tick that was already under way when the
 * widget was hidden finishes but schedules nothing. Once a tick returns null the poll
 * is done: showing the widget again asks nothing more, until start() is called (after
 * an action that changes what is shown). While the browser tab itself is hidden, ticks
 * are skipped.
 */
import { Message, MessageLoop } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

/**
 * What a tick returns: the milliseconds until the next tick, or null when there is
 * nothing more to ask (the poll is done until the next start()).
 */
export type Tick = () => Promise<number | null>;

/** The messages after which a widget may have become visible. */
const SHOWN = new Set(['after-show', 'after-attach']);
/** The messages after which a widget can no longer be seen. */
const HIDDEN = new Set(['after-hide', 'before-detach']);

export class VisiblePoll {
  constructor(
    private readonly widget: Widget,
    private readonly tick: Tick,
    private readonly hiddenTabDelay = 5000
  ) {
    MessageLoop.installMessageHook(widget, this._hook);
    widget.disposed.connect(() => this.stop());
  }

  /** Whether a tick is scheduled or under way. */
  get running(): boolean {
    return this._running;
  }

  /** Whether a tick returned null: nothing more to ask. */
  get done(): boolean {
    return this._done;
  }

  /** Tick now, then as the ticks ask; restarts a poll that is running or done. */
  start(): void {
    this.stop();
    this._done = false;
    this._running = true;
    void this._run(this._generation);
  }

  /** Schedule nothing more (until the widget is shown again, or start()). */
  stop(): void {
    this._generation++;
    this._running = false;
    if (this._timer !== null) {
      window.clearTimeout(this._timer);
      this._timer = null;
    }
  }

  /**
   * Runs before the widget handles the message. A shown widget is marked visible only
   * while it handles it, so the start waits for the end of the current task; an attach
   * and a show in the same task then start one poll, not two.
   */
  private readonly _hook = (_: unknown, msg: Message): boolean => {
    if (HIDDEN.has(msg.type)) {
      this.stop();
    } else if (SHOWN.has(msg.type) && !this._resuming) {
      this._resuming = true;
      void Promise.resolve().then(() => {
        this._resuming = false;
        if (!this._done && !this._running && this.widget.isVisible) {
          this.start();
        }
      });
    }
    return true;
  };

  private async _run(generation: number): Promise<void> {
    this._timer = null;
    if (!this._current(generation)) {
      return;
    }
    let delay: number | null;
    if (document.hidden) {
      delay = this.hiddenTabDelay;
    } else {
      try {
        delay = await this.tick();
      } catch (error) {
        console.error('mlmagic: a poll failed', error);
        delay = this.hiddenTabDelay;
      }
    }
    if (!this._current(generation)) {
      return;
    }
    if (delay === null) {
      this._running = false;
      this._done = true;
      return;
    }
    this._timer = window.setTimeout(() => void this._run(generation), delay);
  }

  private _current(generation: number): boolean {
    if (generation !== this._generation) {
      return false; // stopped, or started again: that run schedules the ticks
    }
    if (this.widget.isDisposed || !this.widget.isVisible) {
      this._running = false;
      return false;
    }
    return true;
  }

  private _done = false;
  private _generation = 0;
  private _resuming = false;
  private _running = false;
  private _timer: number | null = null;
}
