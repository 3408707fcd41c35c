/**
 * Charts on uPlot (small, fast, canvas; its styles are bundled, nothing inline): a time series or
 * bars over categories. Colours come from the theme's CSS variables so that dark mode is legible. The
 * canvas carries an aria-label and the numbers are also given as a visually hidden table, for screen
 * readers and for tests that check what was drawn.
 */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

export interface Series { label: string; values: number[]; color?: string; bars?: boolean }

interface Props {
  title: string;
  /** Time axis in seconds since the epoch (time charts) or category labels (bar charts). */
  x: number[] | string[];
  series: Series[];
  height?: number;
  format?: (v: number) => string;
}

const PALETTE = ['--chart-1', '--chart-2', '--chart-3', '--chart-4', '--chart-5'];

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#3b6fd8';
}

export function Chart({ title, x, series, height = 220, format }: Props) {
  const host = useRef<HTMLDivElement>(null);
  const categorical = typeof x[0] === 'string';
  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const width = Math.max(280, el.clientWidth);
    const axisColor = cssVar('--muted');
    const grid = { stroke: cssVar('--border'), width: 1 };
    const xs = categorical ? x.map((_, i) => i) : (x as number[]);
    const opts: uPlot.Options = {
      width, height,
      legend: { show: series.length > 1 },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: !categorical, ...(categorical ? { range: [-0.5, xs.length - 0.5] as [number, number] } : {}) } },
      axes: [
        {
          stroke: axisColor, grid,
          ...(categorical ? { values: (_u: uPlot, ticks: number[]) => ticks.map((t) => (Number.isInteger(t) ? (x[t] as string) ?? '' : '')), splits: () => xs } : {}),
        },
        { stroke: axisColor, grid, size: 60, ...(format ? { values: (_u: uPlot, ticks: number[]) => ticks.map(format) } : {}) },
      ],
      series: [
        {},
        ...series.map((s, i) => {
          const color = s.color ?? cssVar(PALETTE[i % PALETTE.length]);
          return {
            label: s.label, stroke: color, width: 2,
            fill: s.bars || categorical ? color : `${color}33`,
            ...(s.bars || categorical ? { paths: uPlot.paths.bars!({ size: [0.6, 48] }), points: { show: false } } : {}),
            value: format ? (_u: uPlot, v: number | null) => (v === null ? '' : format(v)) : undefined,
          };
        }),
      ],
    };
    const plot = new uPlot(opts, [xs, ...series.map((s) => s.values)] as uPlot.AlignedData, el);
    const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(280, el.clientWidth), height }));
    resize.observe(el);
    return () => { resize.disconnect(); plot.destroy(); };
  }, [JSON.stringify(x), JSON.stringify(series), height]);

  const label = (i: number) => (categorical ? (x[i] as string) : new Date((x[i] as number) * 1000).toISOString().slice(0, 16).replace('T', ' '));
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <div ref={host} class="chart-canvas" role="img" aria-label={title} />
      {/* A table is as tall as its rows whatever its height: hidden inside a box that is not. */}
      <div class="visually-hidden">
        <table aria-label={`${title} (data)`}>
        <thead><tr><th>{categorical ? 'Category' : 'Time'}</th>{series.map((s) => <th key={s.label}>{s.label}</th>)}</tr></thead>
        <tbody>{x.map((_, i) => <tr key={i}><td>{label(i)}</td>{series.map((s) => <td key={s.label}>{format ? format(s.values[i]) : s.values[i]}</td>)}</tr>)}</tbody>
      </table>
      </div>
    </figure>
  );
}
