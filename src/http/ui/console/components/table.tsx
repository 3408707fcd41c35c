/**
 * The console's one table: columns with optional sorting (of the rows shown; the server pages), paging
 * over the server's limit/offset, optional row selection for bulk actions, and the empty state.
 */
import type { ComponentChildren } from 'preact';
import { useMemo, useState } from 'preact/hooks';
import { Empty } from './states.tsx';

export interface Column<Row> {
  key: string;
  title: string;
  render?: (row: Row) => ComponentChildren;
  /** The value sorted on (and shown when there is no render); no value: the column does not sort. */
  value?: (row: Row) => string | number | null | undefined;
  align?: 'right';
}

export interface Paging {
  total: number;
  limit: number;
  offset: number;
  onPage(offset: number): void;
}

interface Props<Row> {
  label: string;
  columns: Column<Row>[];
  rows: Row[];
  rowKey: (row: Row) => string;
  paging?: Paging;
  empty?: ComponentChildren;
  selection?: { selected: Set<string>; onChange(next: Set<string>): void };
}

export function DataTable<Row>({ label, columns, rows, rowKey, paging, empty, selection }: Props<Row>) {
  const [sort, setSort] = useState<{ key: string; dir: 1 | -1 } | null>(null);
  const sorted = useMemo(() => {
    const column = sort && columns.find((c) => c.key === sort.key);
    if (!column?.value) return rows;
    const value = column.value;
    return [...rows].sort((a, b) => {
      const x = value(a) ?? '';
      const y = value(b) ?? '';
      return (typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y))) * sort!.dir;
    });
  }, [rows, sort, columns]);

  const toggleSort = (key: string) =>
    setSort((s) => (s?.key === key ? (s.dir === 1 ? { key, dir: -1 } : null) : { key, dir: 1 }));
  const allSelected = selection && rows.length > 0 && rows.every((r) => selection.selected.has(rowKey(r)));
  const toggleAll = () => {
    if (!selection) return;
    const next = new Set(selection.selected);
    for (const r of rows) allSelected ? next.delete(rowKey(r)) : next.add(rowKey(r));
    selection.onChange(next);
  };
  const toggleRow = (key: string) => {
    if (!selection) return;
    const next = new Set(selection.selected);
    next.has(key) ? next.delete(key) : next.add(key);
    selection.onChange(next);
  };

  return (
    <div class="table-wrap">
      <table aria-label={label}>
        <thead>
          <tr>
            {selection && (
              <th class="select"><input type="checkbox" aria-label="Select all rows" checked={!!allSelected} onChange={toggleAll} /></th>
            )}
            {columns.map((c) => {
              const dir = sort?.key === c.key ? sort.dir : 0;
              return (
                <th key={c.key} class={c.align === 'right' ? 'num' : undefined} aria-sort={dir === 1 ? 'ascending' : dir === -1 ? 'descending' : c.value ? 'none' : undefined}>
                  {c.value ? (
                    <button type="button" class="sort" onClick={() => toggleSort(c.key)}>
                      {c.title}<span aria-hidden="true">{dir === 1 ? ' ▲' : dir === -1 ? ' ▼' : ''}</span>
                    </button>
                  ) : c.title}
                </th>
              );
            })}
          </tr>
        </thead>
        <tbody>
          {sorted.length === 0 ? (
            <tr><td colSpan={columns.length + (selection ? 1 : 0)}>{empty ?? <Empty title="Nothing here yet." />}</td></tr>
          ) : sorted.map((row) => {
            const key = rowKey(row);
            return (
              <tr key={key} class={selection?.selected.has(key) ? 'selected' : undefined}>
                {selection && (
                  <td class="select"><input type="checkbox" aria-label={`Select ${key}`} checked={selection.selected.has(key)} onChange={() => toggleRow(key)} /></td>
                )}
                {columns.map((c) => (
                  <td key={c.key} class={c.align === 'right' ? 'num' : undefined}>{c.render ? c.render(row) : c.value?.(row)}</td>
                ))}
              </tr>
            );
          })}
        </tbody>
      </table>
      {paging && <Pager {...paging} />}
    </div>
  );
}

function Pager({ total, limit, offset, onPage }: Paging) {
  if (total <= limit && offset === 0) return <p class="pager muted">{total} {total === 1 ? 'row' : 'rows'}</p>;
  const last = Math.min(offset + limit, total);
  return (
    <nav class="pager" aria-label="Pages">
      <span class="muted">{total === 0 ? 0 : offset + 1}–{last} of {total}</span>
      <button type="button" disabled={offset === 0} onClick={() => onPage(Math.max(0, offset - limit))}>Previous</button>
      <button type="button" disabled={last >= total} onClick={() => onPage(offset + limit)}>Next</button>
    </nav>
  );
}
