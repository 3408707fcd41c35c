/**
 * A real HAProxy (Debian's package) in front of an Atrium HTTP server, as sites deploy it: started in the
 * foreground with a generated configuration on free ports, stopped with the test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort, runTool, waitForPort } from './dcmtk.ts';

export interface HaproxyFrontend {
  /** The frontend's name in the configuration. */
  name: string;
  /** Extra lines of the frontend section (e.g. `option forwardfor`). */
  lines: string[];
  /** Terminates TLS with a self-signed certificate for 127.0.0.1. */
  tls?: boolean;
}

export interface Haproxy {
  /** Port of each frontend, by name. */
  ports: Record<string, number>;
  stop(): Promise<void>;
}

export async function startHaproxy(backendPort: number, frontends: HaproxyFrontend[]): Promise<Haproxy> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-haproxy-'));
  const pem = path.join(dir, 'proxy.pem');
  if (frontends.some((f) => f.tls)) {
    const key = path.join(dir, 'key.pem');
    const cert = path.join(dir, 'cert.pem');
    const made = await runTool('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { timeoutMs: 30_000 });
    if (made.code !== 0) throw new Error(`openssl failed: ${made.output}`);
    await writeFile(pem, `${await readFile(cert, 'utf8')}${await readFile(key, 'utf8')}`);
  }
  const ports: Record<string, number> = {};
  const sections: string[] = [];
  for (const f of frontends) {
    ports[f.name] = await freePort();
    sections.push(`frontend ${f.name}`, `  bind 127.0.0.1:${ports[f.name]}${f.tls ? ` ssl crt ${pem}` : ''}`, ...f.lines.map((l) => `  ${l}`), '  default_backend atrium', '');
  }
  const config = [
    'global', '  maxconn 256', '',
    'defaults', '  mode http', '  timeout connect 5s', '  timeout client 30s', '  timeout server 30s', '',
    ...sections,
    'backend atrium', `  server atrium 127.0.0.1:${backendPort}`, '',
  ].join('\n');
  const file = path.join(dir, 'haproxy.cfg');
  await writeFile(file, config);
  const child: ChildProcess = spawn('haproxy', ['-db', '-f', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d) => { output += d; });
  child.stderr?.on('data', (d) => { output += d; });
  try {
    for (const port of Object.values(ports)) await waitForPort(port, child);
  } catch (error) {
    child.kill('SIGKILL');
    throw new Error(`haproxy did not start: ${(error as Error).message}\n${output}`);
  }
  return {
    ports,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
