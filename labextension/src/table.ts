/**
 * A table whose rows are kept across updates: a row is rebuilt only when its item
 * changed, so a poll never replaces the button under the user's pointer.
 */
import { element } from './format';

export interface ITableOptions<T> {
  /** Column headings. */
  headings: string[];
  /** What the table says when there are no items. */
  empty: string;
  /** A stable key of an item (its id). */
  key: (item: T) => string;
  /** A fresh row for an item. */
  render: (item: T) => HTMLTableRowElement;
  /** Update a kept row for values that change on every poll (a live duration). */
  refresh?: (row: HTMLTableRowElement, item: T) => void;
  /** What of an item makes its row change; by default the whole item. */
  signature?: (item: T) => string;
}

export class KeyedTable<T> {
  /** The element that holds the table, or the hint when it is empty. */
  readonly node = element('div', 'mlmagic-list');

  constructor(private readonly options: ITableOptions<T>) {
    const head = element('tr');
    head.append(...options.headings.map(text => element('th', '', text)));
    this._table.append(element('thead'), this._body);
    this._table.tHead!.append(head);
  }

  /** Show ``items``, in their order. */
  show(items: T[]): void {
    const { key, render, refresh } = this.options;
    const signature = this.options.signature ?? ((item: T) => JSON.stringify(item));
    if (!items.length) {
      this._rows.clear();
      this.node.replaceChildren(element('p', 'mlmagic-empty', this.options.empty));
      return;
    }
    const rows = new Map<string, { row: HTMLTableRowElement; signature: string }>();
    for (const item of items) {
      const id = key(item);
      const mark = signature(item);
      const kept = this._rows.get(id);
      if (kept && kept.signature === mark) {
        refresh?.(kept.row, item);
        rows.set(id, kept);
      } else {
        const row = render(item);
        if (kept) {
          kept.row.replaceWith(row);
        }
        rows.set(id, { row, signature: mark });
      }
    }
    this._rows = rows;
    const wanted = [...rows.values()].map(entry => entry.row);
    const current = Array.from(this._body.rows);
    if (wanted.length !== current.length || wanted.some((row, i) => row !== current[i])) {
      this._body.replaceChildren(...wanted);
    }
    if (this._table.parentElement !== this.node) {
      this.node.replaceChildren(this._table);
    }
  }

  private readonly _table = element('table', 'mlmagic-table');
  private readonly _body = element('tbody');
  private _rows = new Map<string, { row: HTMLTableRowElement; signature: string }>();
}
