/**
 * The import graph of src/: which source file imports which, at run time. `import type` and
 * `export type` lines are erased by type stripping and so cannot form a load-order cycle; they are left
 * out. Written by hand because the check needs only the relative specifiers of our own erasable-TS
 * files, which a regular expression reads reliably (no bundler or madge needed for that).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

export type ImportGraph = ReadonlyMap<string, readonly string[]>;

const IMPORT = /^\s*(?:import|export)\s+(?!type\b)(?:[^'";]*?\sfrom\s+)?['"](\.{1,2}\/[^'"]+)['"]/gm;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') ? [path] : [];
  });
}

/** Runtime imports between the non-test files under `root`, keyed by path relative to `root`. */
export function importGraph(root: string): ImportGraph {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(root)) {
    const text = readFileSync(file, 'utf8');
    const targets = [...text.matchAll(IMPORT)].map((m) => relative(root, resolve(dirname(file), m[1]!)));
    graph.set(relative(root, file), [...new Set(targets)]);
  }
  return graph;
}

/** The top-level area of a file: `dicomweb/stow.ts` -> `dicomweb`, `app.ts` -> `app.ts`. */
export function areaOf(file: string): string {
  return file.split('/')[0]!;
}

/** Strongly connected components with more than one member (Tarjan): each is an import cycle. */
export function cycles(graph: ImportGraph): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (node: string): void => {
    index.set(node, next); low.set(node, next); next += 1;
    stack.push(node); onStack.add(node);
    for (const target of graph.get(node) ?? []) {
      if (!index.has(target)) {
        visit(target);
        low.set(node, Math.min(low.get(node)!, low.get(target)!));
      } else if (onStack.has(target)) {
        low.set(node, Math.min(low.get(node)!, index.get(target)!));
      }
    }
    if (low.get(node) === index.get(node)) {
      const component: string[] = [];
      let member: string;
      do { member = stack.pop()!; onStack.delete(member); component.push(member); } while (member !== node);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const node of [...graph.keys()].sort()) if (!index.has(node)) visit(node);
  return found;
}

/** The graph folded to areas: area -> areas it imports (itself left out). */
export function areaGraph(graph: ImportGraph): ImportGraph {
  const folded = new Map<string, Set<string>>();
  for (const [file, targets] of graph) {
    const from = areaOf(file);
    const set = folded.get(from) ?? new Set<string>();
    for (const target of targets) if (areaOf(target) !== from) set.add(areaOf(target));
    folded.set(from, set);
  }
  return new Map([...folded].map(([area, set]) => [area, [...set].sort()]));
}
