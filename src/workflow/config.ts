import type { ConfigSection } from '../config/config.ts';

/** A DICOMweb server that routing rules may send to by STOW-RS (a rule action names it). */
export interface DicomwebDestination {
  /** Unique, stable: rules and jobs name the destination by it. */
  name: string;
  /** The DICOMweb service root (`https://pacs.example.org/dicomweb`): instances are POSTed to `<url>/studies`. */
  url: string;
  /** The environment variable holding a bearer token for it, if it needs one (the token itself is never in the file). */
  tokenEnv: string | null;
  /**
   * Transfer syntaxes the destination takes; an instance stored in another one is transcoded into the first
   * of these it can be (docs/workflow.md "Transcoding"). Empty: everything is sent as stored.
   */
  transferSyntaxes: string[];
  /** How long one STOW-RS request may take. */
  timeoutSeconds: number;
}

export interface WorkflowSettings {
  /** A study is stable after this long without a new instance. */
  quietSeconds: number;
  /** Attempts of a forward job before it fails for good (the dead letter: state failed in /api/jobs). */
  forwardMaxAttempts: number;
  dicomwebDestinations: DicomwebDestination[];
}

/** The `workflow` section of atrium.json and its ATRIUM_WORKFLOW_* variables (docs/workflow.md). */
export const workflowConfig: ConfigSection<WorkflowSettings> = {
  key: 'workflow',
  keys: ['quietSeconds', 'forwardMaxAttempts', 'dicomwebDestinations'],
  environment: {
    ATRIUM_WORKFLOW_QUIET_SECONDS: 'workflow.quietSeconds',
    ATRIUM_WORKFLOW_FORWARD_MAX_ATTEMPTS: 'workflow.forwardMaxAttempts',
  },
  load(read, problems) {
    const destinations: DicomwebDestination[] = [];
    for (let i = 0; read.object(`workflow.dicomwebDestinations.${i}`, ['name', 'url', 'tokenEnv', 'transferSyntaxes', 'timeoutSeconds']); i++) {
      const at = `workflow.dicomwebDestinations.${i}`;
      const name = read.str(`${at}.name`, '');
      if (!name) problems.push(`${at}.name is required`);
      if (destinations.some((d) => d.name === name)) problems.push(`${at}.name "${name}" is given twice`);
      const url = read.str(`${at}.url`, '').replace(/\/+$/, '');
      if (!/^https?:\/\/\S+$/.test(url)) problems.push(`${at}.url must be an http or https URL`);
      const tokenEnv = read.optStr(`${at}.tokenEnv`);
      if (tokenEnv !== null && !/^[A-Z_][A-Z0-9_]*$/.test(tokenEnv)) problems.push(`${at}.tokenEnv must be the name of an environment variable`);
      destinations.push({
        name, url, tokenEnv, transferSyntaxes: read.list(`${at}.transferSyntaxes`, []), timeoutSeconds: read.int(`${at}.timeoutSeconds`, 120, 1, 3600),
      });
    }
    return {
      quietSeconds: read.int('workflow.quietSeconds', 120, 1, 7 * 24 * 3600),
      forwardMaxAttempts: read.int('workflow.forwardMaxAttempts', 10, 1, 1000),
      dicomwebDestinations: destinations,
    };
  },
};
