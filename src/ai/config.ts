import type { ConfigSection } from '../config/config.ts';
import { parseFindings, type FindingMapping } from './node.ts';

export interface AiSettings {
  /** A request without a result after this long is a timeout (a node may set its own). */
  timeoutMinutes: number;
  /** The finding -> flag mapping every node uses after its own (docs/ai.md "Triage"). */
  findings: FindingMapping[];
}

/** The `ai` section of atrium.json and its ATRIUM_AI_* variables (docs/ai.md "Configuration"). */
export const aiConfig: ConfigSection<AiSettings> = {
  key: 'ai',
  keys: ['timeoutMinutes', 'findings'],
  environment: {
    ATRIUM_AI_TIMEOUT_MINUTES: 'ai.timeoutMinutes',
  },
  load(read, problems) {
    const raw: unknown[] = [];
    for (let i = 0; read.object(`ai.findings.${i}`, ['code', 'scheme', 'flag']); i++) {
      raw.push({ code: read.str(`ai.findings.${i}.code`, ''), scheme: read.str(`ai.findings.${i}.scheme`, ''), flag: read.str(`ai.findings.${i}.flag`, '') });
    }
    return {
      timeoutMinutes: read.int('ai.timeoutMinutes', 30, 1, 7 * 24 * 60),
      findings: parseFindings(raw, 'ai.findings', (path, message) => problems.push(`${path}: ${message}`)),
    };
  },
};
