import { existsSync } from 'node:fs';
import type { ConfigSection } from '../config/config.ts';

export interface Hl7ListenerSettings {
  /** Off by default: a RIS/EHR interface is configured on purpose (and `atrium serve` beside tests must not take a port). */
  enabled: boolean;
  host: string;
  port: number;
  tls: null | { port: number; cert: string; key: string; ca: string | null; requireClientCert: boolean };
  /** MSH-3 / MSH-4 of Atrium's ACKs. */
  applicationName: string;
  facilityName: string;
  /** Sending applications (MSH-3.1, or "APP^FACILITY") whose messages are applied; empty: any. */
  allowedSenders: string[];
  /** Remote addresses that may connect; empty: any. */
  allowedAddresses: string[];
  /** A frame over this size closes the connection, nothing of it applied. */
  maxFrameKiB: number;
  /** A connection silent this long is closed. */
  idleTimeoutSeconds: number;
}

export interface RisSettings {
  hl7: Hl7ListenerSettings;
}

const HL7_KEYS = ['enabled', 'host', 'port', 'tls', 'applicationName', 'facilityName', 'allowedSenders', 'allowedAddresses', 'maxFrameKiB', 'idleTimeoutSeconds'];

/** The `ris` section of atrium.json and its ATRIUM_RIS_* variables (docs/configuration.md). */
export const risConfig: ConfigSection<RisSettings> = {
  key: 'ris',
  keys: ['hl7'],
  environment: {
    ATRIUM_RIS_HL7_ENABLED: 'ris.hl7.enabled',
    ATRIUM_RIS_HL7_HOST: 'ris.hl7.host',
    ATRIUM_RIS_HL7_PORT: 'ris.hl7.port',
    ATRIUM_RIS_HL7_ALLOWED_SENDERS: 'ris.hl7.allowedSenders',
    ATRIUM_RIS_HL7_ALLOWED_ADDRESSES: 'ris.hl7.allowedAddresses',
    ATRIUM_RIS_HL7_MAX_FRAME_KIB: 'ris.hl7.maxFrameKiB',
    ATRIUM_RIS_HL7_IDLE_TIMEOUT_SECONDS: 'ris.hl7.idleTimeoutSeconds',
    ATRIUM_RIS_HL7_TLS_PORT: 'ris.hl7.tls.port',
    ATRIUM_RIS_HL7_TLS_CERT: 'ris.hl7.tls.cert',
    ATRIUM_RIS_HL7_TLS_KEY: 'ris.hl7.tls.key',
    ATRIUM_RIS_HL7_TLS_CA: 'ris.hl7.tls.ca',
  },
  load(read, problems) {
    read.object('ris.hl7', HL7_KEYS);
    let tls: Hl7ListenerSettings['tls'] = null;
    if (read.object('ris.hl7.tls', ['port', 'cert', 'key', 'ca', 'requireClientCert'])) {
      const pem = (key: string, required: boolean) => {
        const value = read.optStr(`ris.hl7.tls.${key}`);
        if (!value) { if (required) problems.push(`ris.hl7.tls.${key} is required when HL7 over TLS is enabled: the path of a PEM file`); return null; }
        if (!existsSync(value)) problems.push(`ris.hl7.tls.${key}: no file at ${value}`);
        return value;
      };
      const requireClientCert = read.bool('ris.hl7.tls.requireClientCert', false);
      tls = { port: read.int('ris.hl7.tls.port', 2576, 0, 65535), cert: pem('cert', true) ?? '', key: pem('key', true) ?? '', ca: pem('ca', requireClientCert), requireClientCert };
    }
    return {
      hl7: {
        enabled: read.bool('ris.hl7.enabled', false),
        host: read.str('ris.hl7.host', '0.0.0.0'),
        port: read.int('ris.hl7.port', 2575, 0, 65535),
        tls,
        applicationName: read.str('ris.hl7.applicationName', 'ATRIUM'),
        facilityName: read.str('ris.hl7.facilityName', ''),
        allowedSenders: read.list('ris.hl7.allowedSenders', []),
        allowedAddresses: read.list('ris.hl7.allowedAddresses', []),
        maxFrameKiB: read.int('ris.hl7.maxFrameKiB', 1024, 1, 65536),
        idleTimeoutSeconds: read.int('ris.hl7.idleTimeoutSeconds', 300, 1, 86400),
      },
    };
  },
};
