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

export interface QualitySettings {
  dose: DoseSettings;
}

/** The `quality` section of atrium.json and its ATRIUM_QUALITY_* variables (docs/dose.md, docs/configuration.md). */
export const qualityConfig: ConfigSection<QualitySettings> = {
  key: 'quality',
  keys: ['dose'],
  environment: {
    ATRIUM_QUALITY_DOSE_DRL_PERCENT: 'quality.dose.drlPercent',
    ATRIUM_QUALITY_DOSE_CTDIVOL_ALERT_MGY: 'quality.dose.ctdivolAlertMgy',
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
    return {
      dose: {
        drlPercent: read.int('quality.dose.drlPercent', 100, 1, 10_000),
        ctdivolAlertMgy: read.int('quality.dose.ctdivolAlertMgy', 1000, 1, 1_000_000),
        webhooks,
      },
    };
  },
};
