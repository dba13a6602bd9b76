/**
 * Polling that runs only while a widget is visible.
 *
 * The owner calls start() from onAfterShow and stop() from onAfterHide (and when it is
 * disposed); a tick that was already under way when the widget was hidden finishes but
 * schedules nothing. While the browser tab itself is hidden, ticks are skipped.
 */
import { Widget } from '@lumino/widgets';

/**
 * What a tick returns: the milliseconds until the next tick, or null to stop until the
 * next start().
 */
export type Tick = () => Promise<number | null>;

export class VisiblePoll {
  constructor(
    private readonly widget: Widget,
    private readonly tick: Tick,
    private readonly hiddenTabDelay = 5000
  ) {}

  /** Whether a tick is scheduled or under way. */
  get running(): boolean {
    return this._running;
  }

  /** Tick now, then as the ticks ask; restarts a poll that is running. */
  start(): void {
    this.stop();
    this._running = true;
    void this._run(this._generation);
  }

  /** Schedule nothing more. */
  stop(): void {
    this._generation++;
    this._running = false;
    if (this._timer !== null) {
      window.clearTimeout(this._timer);
      this._timer = null;
    }
  }

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

  private _generation = 0;
  private _running = false;
  private _timer: number | null = null;
}
