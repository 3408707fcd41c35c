import type { ConfigSection } from '../config/config.ts';

/** A destination of reading notifications (SLA alerts, critical results): an HTTP POST of JSON by a durable job. */
export interface ReadingWebhook {
  /** Unique, stable: notifications and clinicians name their destination by it. */
  name: string;
  url: string;
  maxAttempts: number;
  timeoutSeconds: number;
}

/** Where a clinician's critical results go, and where they escalate to when not acknowledged in time. */
export interface ClinicianDestination {
  /** Matched against the order's ordering physician, else its referring physician: an XCN ID (`5678`) or a name (`ORDERER^OSCAR`, case-insensitive). */
  clinician: string;
  destination: string;
  /** Default: critical.escalationDestination. */
  escalation: string | null;
}

export interface ReadingSettings {
  /** A study is "about to breach" once this share (percent) of its SLA has passed; a row's warningMinutes overrides it. */
  warningPercent: number;
  /** Webhook names SLA warnings and breaches are sent to. */
  alertDestinations: string[];
  webhooks: ReadingWebhook[];
  critical: {
    /** Minutes the clinician has to acknowledge a critical result before it escalates. */
    acknowledgeMinutes: number;
    /** Where a clinician not listed in `clinicians` is notified. */
    defaultDestination: string | null;
    escalationDestination: string | null;
    clinicians: ClinicianDestination[];
  };
}

/** The `reading` section of atrium.json and its ATRIUM_READING_* variables (docs/reading.md). */
export const readingConfig: ConfigSection<ReadingSettings> = {
  key: 'reading',
  keys: ['warningPercent', 'alertDestinations', 'webhooks', 'critical'],
  environment: {
    ATRIUM_READING_WARNING_PERCENT: 'reading.warningPercent',
    ATRIUM_READING_ALERT_DESTINATIONS: 'reading.alertDestinations',
    ATRIUM_READING_CRITICAL_ACKNOWLEDGE_MINUTES: 'reading.critical.acknowledgeMinutes',
  },
  load(read, problems) {
    const webhooks: ReadingWebhook[] = [];
    for (let i = 0; read.object(`reading.webhooks.${i}`, ['name', 'url', 'maxAttempts', 'timeoutSeconds']); i++) {
      const at = `reading.webhooks.${i}`;
      const name = read.str(`${at}.name`, '');
      if (!name) problems.push(`${at}.name is required`);
      if (webhooks.some((w) => w.name === name)) problems.push(`${at}.name "${name}" is given twice`);
      const url = read.str(`${at}.url`, '');
      if (!/^https?:\/\/\S+$/.test(url)) problems.push(`${at}.url must be an http or https URL`);
      webhooks.push({ name, url, maxAttempts: read.int(`${at}.maxAttempts`, 10, 1, 1000), timeoutSeconds: read.int(`${at}.timeoutSeconds`, 10, 1, 600) });
    }
    const known = (path: string, name: string | null) => {
      if (name !== null && !webhooks.some((w) => w.name === name)) problems.push(`${path} names "${name}", which is not one of reading.webhooks`);
    };
    const alertDestinations = read.list('reading.alertDestinations', []);
    alertDestinations.forEach((d, i) => known(`reading.alertDestinations.${i}`, d));
    read.object('reading.critical', ['acknowledgeMinutes', 'defaultDestination', 'escalationDestination', 'clinicians']);
    const clinicians: ClinicianDestination[] = [];
    for (let i = 0; read.object(`reading.critical.clinicians.${i}`, ['clinician', 'destination', 'escalation']); i++) {
      const at = `reading.critical.clinicians.${i}`;
      const clinician = read.str(`${at}.clinician`, '');
      if (!clinician) problems.push(`${at}.clinician is required`);
      const destination = read.str(`${at}.destination`, '');
      known(`${at}.destination`, destination);
      const escalation = read.optStr(`${at}.escalation`);
      known(`${at}.escalation`, escalation);
      clinicians.push({ clinician, destination, escalation });
    }
    const defaultDestination = read.optStr('reading.critical.defaultDestination');
    known('reading.critical.defaultDestination', defaultDestination);
    const escalationDestination = read.optStr('reading.critical.escalationDestination');
    known('reading.critical.escalationDestination', escalationDestination);
    return {
      warningPercent: read.int('reading.warningPercent', 80, 1, 100),
      alertDestinations,
      webhooks,
      critical: { acknowledgeMinutes: read.int('reading.critical.acknowledgeMinutes', 30, 1, 10_080), defaultDestination, escalationDestination, clinicians },
    };
  },
};
