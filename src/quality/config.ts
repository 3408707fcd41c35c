import { readFileSync } from 'node:fs';
import type { ConfigSection } from '../config/config.ts';

/** A destination told of every new dose alert: an HTTP POST of the alert as JSON, by a durable job. */
export interface DoseWebhook {
  /** Unique, stable: jobs name their destination by it. */
  name: string;
  url: string;
  /** Attempts of a notification job before it fails for good. */
  maxAttempts: number;
  /** How long one attempt waits for the answer. */
  timeoutSeconds: number;
}

export interface DoseSettings {
  /** A study is alerted when over its DRL times drlPercent / 100: 100 alerts above the DRL itself, 150 at half as much again. */
  drlPercent: number;
  /**
   * A CT irradiation event with a Mean CTDIvol above this (mGy) is alerted whatever the DRLs say. The default
   * is the CTDIvol alert value the AAPM suggests for NEMA XR 25 Dose Check (1000 mGy).
   */
  ctdivolAlertMgy: number;
  webhooks: DoseWebhook[];
}

/** The integrity checks by name (docs/integrity.md). */
export const INTEGRITY_KINDS = [
  'identity-mismatch', 'study-uid-conflict', 'series-uid-conflict', 'sop-instance-conflict', 'duplicate-study', 'orphan-study', 'key-attributes', 'order-without-images',
] as const;
export type IntegrityKind = (typeof INTEGRITY_KINDS)[number];

export interface IntegritySettings {
  /** The checks that run (all by default); a check left out detects nothing and resolves nothing. */
  checks: IntegrityKind[];
  /** Minutes between scheduled full sweeps; 0: none scheduled (on demand only). */
  sweepIntervalMinutes: number;
  /** A study with no order is an orphan once it is this many minutes old. */
  orphanGraceMinutes: number;
  /** An order (not cancelled or discontinued) with no images this many minutes after its scheduled start is reported. */
  orderGraceMinutes: number;
}

/** A webhook told of quality notifications: an HTTP POST of the finding or alert as JSON, by a durable job. */
export interface QualityWebhook extends DoseWebhook {
  /** What it is told of: `dose-alert`, `integrity-finding`. */
  subjects: NotificationSubject[];
}

export type NotificationSubject = 'dose-alert' | 'integrity-finding';
export const NOTIFICATION_SUBJECTS: readonly NotificationSubject[] = ['dose-alert', 'integrity-finding'];

/** E-mail through the site's SMTP server. */
export interface QualityEmail {
  name: string;
  host: string;
  port: number;
  /** TLS from the first byte (SMTPS, usually port 465); else STARTTLS when the server offers it. */
  secure: boolean;
  /** Refuse a server that does not offer STARTTLS (when not `secure`). */
  requireTls: boolean;
  user: string | null;
  /** From ATRIUM_QUALITY_SMTP_PASSWORD or the file `passwordFile` names; never from atrium.json itself. */
  password: string | null;
  from: string;
  to: string[];
  subjects: NotificationSubject[];
  maxAttempts: number;
  timeoutSeconds: number;
}

export interface NotificationSettings {
  webhooks: QualityWebhook[];
  email: QualityEmail | null;
  /** Integrity findings below this severity are not notified (dose alerts always are). */
  minSeverity: 'critical' | 'major' | 'minor';
}

export interface QualitySettings {
  dose: DoseSettings;
  integrity: IntegritySettings;
  notifications: NotificationSettings;
}

/** The `quality` section of atrium.json and its ATRIUM_QUALITY_* variables (docs/dose.md, docs/configuration.md). */
export const qualityConfig: ConfigSection<QualitySettings> = {
  key: 'quality',
  keys: ['dose', 'integrity', 'notifications'],
  environment: {
    ATRIUM_QUALITY_DOSE_DRL_PERCENT: 'quality.dose.drlPercent',
    ATRIUM_QUALITY_DOSE_CTDIVOL_ALERT_MGY: 'quality.dose.ctdivolAlertMgy',
    ATRIUM_QUALITY_INTEGRITY_SWEEP_INTERVAL_MINUTES: 'quality.integrity.sweepIntervalMinutes',
    ATRIUM_QUALITY_INTEGRITY_ORPHAN_GRACE_MINUTES: 'quality.integrity.orphanGraceMinutes',
    ATRIUM_QUALITY_INTEGRITY_ORDER_GRACE_MINUTES: 'quality.integrity.orderGraceMinutes',
    ATRIUM_QUALITY_SMTP_HOST: 'quality.notifications.email.host',
    ATRIUM_QUALITY_SMTP_PORT: 'quality.notifications.email.port',
    ATRIUM_QUALITY_SMTP_USER: 'quality.notifications.email.user',
    ATRIUM_QUALITY_SMTP_PASSWORD: 'quality.notifications.email.password',
  },
  load(read, problems) {
    read.object('quality.dose', ['drlPercent', 'ctdivolAlertMgy', 'webhooks']);
    const webhooks: DoseWebhook[] = [];
    for (let i = 0; read.object(`quality.dose.webhooks.${i}`, ['name', 'url', 'maxAttempts', 'timeoutSeconds']); i++) {
      const at = `quality.dose.webhooks.${i}`;
      const name = read.str(`${at}.name`, '');
      if (!name) problems.push(`${at}.name is required`);
      if (webhooks.some((w) => w.name === name)) problems.push(`${at}.name "${name}" is given twice`);
      const url = read.str(`${at}.url`, '');
      if (!/^https?:\/\/\S+$/.test(url)) problems.push(`${at}.url must be an http or https URL`);
      webhooks.push({ name, url, maxAttempts: read.int(`${at}.maxAttempts`, 10, 1, 1000), timeoutSeconds: read.int(`${at}.timeoutSeconds`, 10, 1, 600) });
    }
    read.object('quality.integrity', ['checks', 'sweepIntervalMinutes', 'orphanGraceMinutes', 'orderGraceMinutes']);
    const checks = read.list('quality.integrity.checks', [...INTEGRITY_KINDS]);
    for (const c of checks) if (!(INTEGRITY_KINDS as readonly string[]).includes(c)) problems.push(`quality.integrity.checks: "${c}" is not a check (${INTEGRITY_KINDS.join(', ')})`);
    const subjectsAt = (at: string, fallback: NotificationSubject[]) => {
      const list = read.list(`${at}.subjects`, fallback);
      for (const v of list) if (!(NOTIFICATION_SUBJECTS as readonly string[]).includes(v)) problems.push(`${at}.subjects: "${v}" is not one of ${NOTIFICATION_SUBJECTS.join(', ')}`);
      return list as NotificationSubject[];
    };
    read.object('quality.notifications', ['webhooks', 'email', 'minSeverity']);
    const qualityWebhooks: QualityWebhook[] = [];
    for (let i = 0; read.object(`quality.notifications.webhooks.${i}`, ['name', 'url', 'maxAttempts', 'timeoutSeconds', 'subjects']); i++) {
      const at = `quality.notifications.webhooks.${i}`;
      const name = read.str(`${at}.name`, '');
      if (!name) problems.push(`${at}.name is required`);
      if (qualityWebhooks.some((w) => w.name === name) || webhooks.some((w) => w.name === name)) problems.push(`${at}.name "${name}" is given twice`);
      const url = read.str(`${at}.url`, '');
      if (!/^https?:\/\/\S+$/.test(url)) problems.push(`${at}.url must be an http or https URL`);
      qualityWebhooks.push({ name, url, maxAttempts: read.int(`${at}.maxAttempts`, 10, 1, 1000), timeoutSeconds: read.int(`${at}.timeoutSeconds`, 10, 1, 600), subjects: subjectsAt(at, [...NOTIFICATION_SUBJECTS]) });
    }
    let email: QualityEmail | null = null;
    if (read.object('quality.notifications.email', ['name', 'host', 'port', 'secure', 'requireTls', 'user', 'password', 'passwordFile', 'from', 'to', 'subjects', 'maxAttempts', 'timeoutSeconds'])) {
      const at = 'quality.notifications.email';
      const host = read.str(`${at}.host`, '');
      if (!host) problems.push(`${at}.host is required (the SMTP server)`);
      const from = read.str(`${at}.from`, '');
      if (!/^[^@\s]+@[^@\s]+$/.test(from)) problems.push(`${at}.from must be an e-mail address`);
      const to = read.list(`${at}.to`, []);
      if (to.length === 0) problems.push(`${at}.to must name at least one address`);
      for (const t of to) if (!/^[^@\s]+@[^@\s]+$/.test(t)) problems.push(`${at}.to: "${t}" is not an e-mail address`);
      let password = read.optStr(`${at}.password`);
      const passwordFile = read.optStr(`${at}.passwordFile`);
      if (password === null && passwordFile !== null) {
        try { password = readFileSync(passwordFile, 'utf8').trim(); } catch (e) { problems.push(`${at}.passwordFile: ${(e as Error).message}`); }
      }
      email = {
        name: read.str(`${at}.name`, 'email'), host, port: read.int(`${at}.port`, 25, 1, 65535), secure: read.bool(`${at}.secure`, false),
        requireTls: read.bool(`${at}.requireTls`, false), user: read.optStr(`${at}.user`), password, from, to, subjects: subjectsAt(at, [...NOTIFICATION_SUBJECTS]),
        maxAttempts: read.int(`${at}.maxAttempts`, 10, 1, 1000), timeoutSeconds: read.int(`${at}.timeoutSeconds`, 30, 1, 600),
      };
      if (qualityWebhooks.some((w) => w.name === email!.name)) problems.push(`${at}.name "${email.name}" is a webhook's name too`);
    }
    return {
      dose: {
        drlPercent: read.int('quality.dose.drlPercent', 100, 1, 10_000),
        ctdivolAlertMgy: read.int('quality.dose.ctdivolAlertMgy', 1000, 1, 1_000_000),
        webhooks,
      },
      integrity: {
        checks: checks as IntegrityKind[],
        sweepIntervalMinutes: read.int('quality.integrity.sweepIntervalMinutes', 1440, 0, 525_600),
        orphanGraceMinutes: read.int('quality.integrity.orphanGraceMinutes', 1440, 0, 525_600),
        orderGraceMinutes: read.int('quality.integrity.orderGraceMinutes', 1440, 0, 525_600),
      },
      notifications: {
        webhooks: qualityWebhooks, email,
        minSeverity: read.oneOf('quality.notifications.minSeverity', ['critical', 'major', 'minor'] as const, 'major'),
      },
    };
  },
};
