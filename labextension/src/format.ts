/**
 * Small DOM and text helpers shared by the panel and the log view.
 */

/** Colour class of a run status, service state or environment status. */
export function stateClass(state: string): string {
  const value = state.toLowerCase();
  if (['completed', 'healthy', 'ready', 'built'].includes(value)) {
    return 'mlmagic-ok';
  }
  if (['failed', 'unhealthy'].includes(value)) {
    return 'mlmagic-bad';
  }
  if (['canceled', 'registered'].includes(value)) {
    return 'mlmagic-muted';
  }
  return 'mlmagic-live';
}

/** A rounded label coloured by its state. */
export function badge(text: string, state: string = text): HTMLElement {
  const span = document.createElement('span');
  span.className = `mlmagic-badge ${stateClass(state)}`;
  span.textContent = text;
  return span;
}

/** An element with a class and text (always as text: nothing here is parsed as HTML). */
export function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = '',
  text = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text) {
    node.textContent = text;
  }
  return node;
}

/** `0.4 s`, `12 s`, `4 min 05 s`, `1 h 02 min`. */
export function formatDuration(seconds: number | null): string {
  if (seconds === null || !isFinite(seconds)) {
    return '';
  }
  if (seconds < 10) {
    return `${seconds.toFixed(1)} s`;
  }
  const whole = Math.floor(seconds);
  if (whole < 60) {
    return `${whole} s`;
  }
  if (whole < 3600) {
    return `${Math.floor(whole / 60)} min ${String(whole % 60).padStart(2, '0')} s`;
  }
  const minutes = Math.floor((whole % 3600) / 60);
  return `${Math.floor(whole / 3600)} h ${String(minutes).padStart(2, '0')} min`;
}

/** A time of day (to the minute) for today, else the date and time. */
export function formatTime(epochSeconds: number | null): string {
  if (epochSeconds === null) {
    return '';
  }
  const when = new Date(epochSeconds * 1000);
  const time = when.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  if (when.toDateString() === new Date().toDateString()) {
    return time;
  }
  return `${when.toLocaleDateString([], { month: 'short', day: 'numeric' })} ${time}`;
}

// Escape sequences (colours, cursor moves, titles) a terminal would not print.
const ANSI = /\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])/g;

/**
 * One line of a log as it is shown: escape sequences removed and, when the line was
 * redrawn with carriage returns (a tqdm progress bar), only its last drawing.
 */
export function terminalLine(line: string): string {
  const clean = line.replace(ANSI, '');
  const trimmed = clean.endsWith('\r') ? clean.slice(0, -1) : clean;
  const cut = trimmed.lastIndexOf('\r');
  return cut < 0 ? trimmed : trimmed.slice(cut + 1);
}

/** `512 B`, `3.4 KiB`, `12 MiB`, `1.2 GiB`. */
export function formatBytes(bytes: number | null): string {
  if (bytes === null) {
    return '';
  }
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

/** A value of a param or metric as a table shows it. */
export function formatValue(value: unknown): string {
  if (value === null || value === undefined) {
    return '';
  }
  if (typeof value === 'number') {
    return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(6)));
  }
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** A button that reads as a link (keyboard reachable like any button). */
export function linkButton(label: string, title: string, action: () => void): HTMLButtonElement {
  const control = element('button', 'mlmagic-link', label);
  control.type = 'button';
  control.title = title;
  control.addEventListener('click', event => {
    event.stopPropagation();
    action();
  });
  return control;
}
