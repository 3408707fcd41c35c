import { parseArgs, type ParseArgsConfig } from 'node:util';

/**
 * The command line of a benchmark: its options (plus --help), a usage line printed with any problem (exit
 * code 2), and whole-number options read with a readable error.
 */
export function benchArgs<O extends NonNullable<ParseArgsConfig['options']>>(name: string, usageLine: string, options: O) {
  const usage = (message?: string): never => {
    if (message) console.error(`${name}: ${message}`);
    console.error(`usage: npm run ${name} -- ${usageLine}`);
    process.exit(2);
  };
  let values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  try {
    values = parseArgs({ options: { ...options, help: { type: 'boolean', short: 'h', default: false } }, allowPositionals: false }).values;
  } catch (error) {
    return usage((error as Error).message);
  }
  if (values.help) usage();
  const wholeNumber = (option: string, min = 1): number => {
    const value = String(values[option]);
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) usage(`--${option} must be a whole number of at least ${min}, got "${value}"`);
    return n;
  };
  return { args: values, usage, wholeNumber };
}
