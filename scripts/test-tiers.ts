/**
 * Which test files need more than Node and the repository: PostgreSQL, an S3 server, Chromium, DCMTK or
 * another program. `npm run test:unit` runs the rest; `npm test` runs everything.
 *
 * Read from the code rather than kept as a list, so that a new test, or a helper that starts needing
 * PostgreSQL, is classified without anyone remembering to: each test file's run-time imports are followed
 * through our own files (static, dynamic and `require`, and scripts it runs as child processes), and a
 * need is what a reached file does, not what it is called:
 * - imports `pg` from test code (production imports it too, but connects only when configured so);
 * - imports `s3rver`, or `@aws-sdk/client-s3` from test code;
 * - imports `playwright-core`;
 * - runs a program through node:child_process other than Node itself and openssl (`atrium certs` needs
 *   openssl; it is where Node and TLS are). An argument the code does not spell out counts as a program.
 * What the reading cannot see (a test that reaches PostgreSQL through production code and PG* variables,
 * say) fails loudly instead: test:unit points PostgreSQL at a closed port and shadows DCMTK and Chromium.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

/** Debian packages the tests drive as real peers (command -> package). */
export const DEBIAN_TOOLS: Record<string, string> = {
  echoscu: 'dcmtk', storescu: 'dcmtk', findscu: 'dcmtk', movescu: 'dcmtk', getscu: 'dcmtk', storescp: 'dcmtk',
  dcmqrscp: 'dcmtk', dcmdump: 'dcmtk', openssl: 'openssl', chromium: 'chromium', haproxy: 'haproxy', Orthanc: 'orthanc',
  mllp_send: 'python3-hl7',
};

/** Programs a unit test may run besides Node. */
export const UNIT_PROGRAMS: readonly string[] = ['openssl'];

export type Need = 'PostgreSQL' | 'S3 server' | 'Chromium' | 'DCMTK' | 'a program';

export interface TestFileTier {
  /** Relative to the project root. */
  file: string;
  /** Empty: a unit test. Otherwise each need with the import chain that leads to it. */
  needs: { need: Need; why: string }[];
}

export function testFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (name === 'node_modules' || name.startsWith('.')) continue;
    if (statSync(path).isDirectory()) out.push(...testFiles(path));
    else if (name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

const CHILD_PROCESS_FUNCTIONS = new Set(['spawn', 'spawnSync', 'execFile', 'execFileSync', 'exec', 'execSync', 'fork']);

interface FileFacts {
  /** Run-time module specifiers (type-only imports are erased by type stripping and left out). */
  specifiers: string[];
  /** `new URL('./x.ts', import.meta.url)`: files the code may run as a child process. */
  scripts: string[];
  /** Programs started through node:child_process; `undefined` entries are ones the code does not spell out. */
  programs: (string | undefined)[];
  /** The expressions behind the undefined entries of `programs`, for the report. */
  unspelled: string[];
}

function factsOf(path: string): FileFacts {
  const source = ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const facts: FileFacts = { specifiers: [], scripts: [], programs: [], unspelled: [] };
  /** Local names of child_process functions (`spawn`, or `run` for `spawn as run`) and of the namespace. */
  const functions = new Map<string, string>();
  const namespaces = new Set<string>();
  const literal = (node: ts.Node | undefined): string | undefined =>
    node && (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) ? node.text : undefined;

  for (const statement of source.statements) {
    if (ts.isImportDeclaration(statement) && !statement.importClause?.isTypeOnly) {
      const specifier = literal(statement.moduleSpecifier)!;
      facts.specifiers.push(specifier);
      if (specifier === 'node:child_process' || specifier === 'child_process') {
        const clause = statement.importClause;
        if (clause?.name) namespaces.add(clause.name.text);
        const bindings = clause?.namedBindings;
        if (bindings && ts.isNamespaceImport(bindings)) namespaces.add(bindings.name.text);
        if (bindings && ts.isNamedImports(bindings)) {
          for (const element of bindings.elements) {
            if (!element.isTypeOnly) functions.set(element.name.text, (element.propertyName ?? element.name).text);
          }
        }
      }
    } else if (ts.isExportDeclaration(statement) && statement.moduleSpecifier && !statement.isTypeOnly) {
      facts.specifiers.push(literal(statement.moduleSpecifier)!);
    }
  }

  /** The child_process function `node` names, if it names one. */
  const childProcessFunction = (node: ts.Node): string | undefined => {
    if (ts.isIdentifier(node)) return functions.get(node.text);
    if (ts.isPropertyAccessExpression(node) && ts.isIdentifier(node.expression) && namespaces.has(node.expression.text)) {
      return CHILD_PROCESS_FUNCTIONS.has(node.name.text) ? node.name.text : undefined;
    }
    return undefined;
  };
  const noteProgram = (fn: string, call: ts.CallExpression | undefined): void => {
    if (fn === 'fork') return; // always Node
    const first = call?.arguments[0];
    if (first && first.getText(source) === 'process.execPath') return;
    const program = literal(first);
    facts.programs.push(program === undefined ? undefined : program.split(/\s/)[0]);
    if (program === undefined) facts.unspelled.push(first ? first.getText(source) : fn);
  };

  const visit = (node: ts.Node): void => {
    if (ts.isCallExpression(node)) {
      const target = literal(node.arguments[0]);
      if (node.expression.kind === ts.SyntaxKind.ImportKeyword && target !== undefined) facts.specifiers.push(target);
      if (ts.isIdentifier(node.expression) && node.expression.text === 'require' && target !== undefined) facts.specifiers.push(target);
    }
    if (ts.isNewExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'URL') {
      const target = literal(node.arguments?.[0]);
      if (target !== undefined && /\.[cm]?[jt]s$/.test(target) && node.arguments?.[1]?.getText(source) === 'import.meta.url') facts.scripts.push(target);
    }
    // Every use of a child_process function is a program started, whether called directly, through
    // promisify(execFile)(...), or handed on (then which program is not spelled out here).
    const fn = (ts.isIdentifier(node) || ts.isPropertyAccessExpression(node)) && !isDeclarationName(node) ? childProcessFunction(node) : undefined;
    if (fn !== undefined) {
      const parent = node.parent;
      if (ts.isCallExpression(parent) && parent.expression === node) noteProgram(fn, parent);
      else if (ts.isCallExpression(parent) && ts.isCallExpression(parent.parent) && parent.parent.expression === parent) noteProgram(fn, parent.parent);
      else noteProgram(fn, undefined);
      return;
    }
    ts.forEachChild(node, visit);
  };
  ts.forEachChild(source, (node) => {
    if (!ts.isImportDeclaration(node)) visit(node);
  });
  return facts;
}

function isDeclarationName(node: ts.Node): boolean {
  const parent = node.parent;
  return (ts.isPropertyAccessExpression(parent) && parent.name === node) || (ts.isPropertyAssignment(parent) && parent.name === node);
}

/** `@aws-sdk/client-s3/x` -> `@aws-sdk/client-s3`, `pg` -> `pg`; undefined for our own files. */
function packageOf(specifier: string): string | undefined {
  if (specifier.startsWith('.') || specifier.startsWith('/')) return undefined;
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/** Test code: what production never loads (the import-graph test keeps src/ from importing test/). */
function isTestCode(rel: string): boolean {
  return rel.startsWith('test/') || /\.(test|contract)\.ts$/.test(rel);
}

function needsOf(rel: string, facts: FileFacts): { need: Need; what: string }[] {
  const needs: { need: Need; what: string }[] = [];
  const packages = new Set(facts.specifiers.map(packageOf).filter((p) => p !== undefined));
  if (packages.has('pg') && isTestCode(rel)) needs.push({ need: 'PostgreSQL', what: 'imports pg' });
  if (packages.has('s3rver')) needs.push({ need: 'S3 server', what: 'imports s3rver' });
  if (packages.has('@aws-sdk/client-s3') && isTestCode(rel)) needs.push({ need: 'S3 server', what: 'imports @aws-sdk/client-s3' });
  if (packages.has('playwright-core') || packages.has('playwright')) needs.push({ need: 'Chromium', what: 'imports playwright-core' });
  for (const program of new Set(facts.programs)) {
    if (program !== undefined && UNIT_PROGRAMS.includes(program)) continue;
    if (program !== undefined && DEBIAN_TOOLS[program] === 'dcmtk') needs.push({ need: 'DCMTK', what: `runs ${program}` });
    else if (program !== undefined && DEBIAN_TOOLS[program] === 'chromium') needs.push({ need: 'Chromium', what: `runs ${program}` });
    else if (program !== undefined) needs.push({ need: 'a program', what: `runs ${program}` });
    else needs.push({ need: 'a program', what: `runs ${facts.unspelled.join(', ')}` });
  }
  return needs;
}

/** Classifies every *.test.ts under src/ and test/ (or `files`, absolute paths) of the project at `root`. */
export function classifyTests(root: string, files?: string[]): TestFileTier[] {
  const cache = new Map<string, FileFacts>();
  const facts = (path: string): FileFacts => {
    let known = cache.get(path);
    if (!known) cache.set(path, (known = factsOf(path)));
    return known;
  };
  const all = files ?? [...testFiles(join(root, 'src')), ...testFiles(join(root, 'test'))];
  return all.sort().map((testFile) => {
    const needs: { need: Need; why: string }[] = [];
    const via = new Map<string, string | undefined>([[testFile, undefined]]);
    const queue = [testFile];
    const chain = (path: string): string => {
      const steps: string[] = [];
      for (let at: string | undefined = path; at !== undefined; at = via.get(at)) steps.unshift(relative(root, at));
      return steps.join(' -> ');
    };
    while (queue.length > 0) {
      const path = queue.shift()!;
      const known = facts(path);
      for (const { need, what } of needsOf(relative(root, path), known)) {
        if (!needs.some((n) => n.need === need)) needs.push({ need, why: `${chain(path)} ${what}` });
      }
      for (const specifier of [...known.specifiers, ...known.scripts]) {
        if (packageOf(specifier) !== undefined) continue;
        const target = resolve(dirname(path), specifier);
        if (via.has(target) || !existsSync(target) || !/\.[cm]?ts$/.test(target)) continue;
        via.set(target, path);
        queue.push(target);
      }
    }
    return { file: relative(root, testFile), needs };
  });
}
