/** `npm run build:ui`: the operations console into dist/ui (see src/http/ui/build.ts). */
import { buildConsole, CONSOLE_DIST } from '../src/http/ui/build.ts';

const started = Date.now();
await buildConsole();
console.log(`operations console built into ${CONSOLE_DIST} in ${Date.now() - started} ms`);
