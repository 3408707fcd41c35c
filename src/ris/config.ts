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

/** Order statuses an HL7 destination can be told of (docs/ris.md "Outbound status messages"). */
export const OUTBOUND_STATUSES = ['scheduled', 'arrived', 'in-progress', 'completed', 'discontinued', 'cancelled'] as const;
export type OutboundStatus = (typeof OUTBOUND_STATUSES)[number];

/**
 * A RIS, EHR or other HL7 system: sent ORM^O01 / OMI^O23 status messages when an order's status moves
 * (`statuses`), and ORU^R01 when a report becomes final or is corrected (`reports`).
 */
export interface Hl7Destination {
  /** Unique, stable: jobs name their destination by it. */
  name: string;
  host: string;
  port: number;
  /** TLS (1.2+) when given: PEM paths of the CA to trust and, for mutual TLS, a client certificate and key. */
  tls: null | { ca: string | null; cert: string | null; key: string | null; servername: string | null; rejectUnauthorized: boolean };
  messageType: 'ORM^O01' | 'OMI^O23';
  /** MSH-12. */
  version: string;
  /** MSH-5 / MSH-6. */
  receivingApplication: string;
  receivingFacility: string;
  /** Which order statuses are sent ([] for a destination that only takes reports). */
  statuses: OutboundStatus[];
  /** Send final (F) and corrected (C) reports as ORU^R01 (docs/ehr.md "Reports to the EHR"). */
  reports: boolean;
  /** OBX-2 of the report text: TX, one OBX per line; FT, one OBX with the lines joined by \.br\. */
  reportValueType: 'TX' | 'FT';
  /**
   * Also send a report that came in by HL7 from this very system (off: the sender of an ORU is not sent it
   * back). The sender is this destination when its MSH-3 is `receivingApplication` and, if
   * `receivingFacility` is set, its MSH-4 is that.
   */
  echoReports: boolean;
  /** Also send changes that came in by HL7 (off: the RIS that told us is not told back). */
  echoHl7: boolean;
  /** How long to wait for the connection and then for the ACK before the attempt counts as failed. */
  ackTimeoutSeconds: number;
  /** Attempts of a job before it fails for good (no answer, AE). */
  maxAttempts: number;
}

export interface RisSettings {
  hl7: Hl7ListenerSettings;
  hl7Destinations: Hl7Destination[];
}

const DESTINATION_KEYS = ['name', 'host', 'port', 'tls', 'messageType', 'version', 'receivingApplication', 'receivingFacility', 'statuses', 'echoHl7',
  'reports', 'reportValueType', 'echoReports', 'ackTimeoutSeconds', 'maxAttempts'];

function loadDestinations(read: Parameters<ConfigSection<RisSettings>['load']>[0], problems: string[]): Hl7Destination[] {
  const destinations: Hl7Destination[] = [];
  for (let i = 0; read.object(`ris.hl7Destinations.${i}`, DESTINATION_KEYS); i++) {
    const at = `ris.hl7Destinations.${i}`;
    const name = read.str(`${at}.name`, '');
    if (!name) problems.push(`${at}.name is required`);
    if (destinations.some((d) => d.name === name)) problems.push(`${at}.name "${name}" is given twice`);
    const host = read.str(`${at}.host`, '');
    if (!host) problems.push(`${at}.host is required`);
    let tls: Hl7Destination['tls'] = null;
    if (read.object(`${at}.tls`, ['ca', 'cert', 'key', 'servername', 'rejectUnauthorized'])) {
      const pem = (key: string) => {
        const value = read.optStr(`${at}.tls.${key}`);
        if (value && !existsSync(value)) problems.push(`${at}.tls.${key}: no file at ${value}`);
        return value;
      };
      tls = { ca: pem('ca'), cert: pem('cert'), key: pem('key'), servername: read.optStr(`${at}.tls.servername`), rejectUnauthorized: read.bool(`${at}.tls.rejectUnauthorized`, true) };
    }
    const statuses = read.list(`${at}.statuses`, ['arrived', 'in-progress', 'completed', 'discontinued', 'cancelled']);
    for (const s of statuses) if (!(OUTBOUND_STATUSES as readonly string[]).includes(s)) problems.push(`${at}.statuses: "${s}" is not one of ${OUTBOUND_STATUSES.join(', ')}`);
    const messageType = read.oneOf(`${at}.messageType`, ['ORM^O01', 'OMI^O23'] as const, 'ORM^O01');
    destinations.push({
      name, host, port: read.int(`${at}.port`, 2575, 1, 65535), tls, messageType,
      version: read.oneOf(`${at}.version`, ['2.3', '2.3.1', '2.4', '2.5', '2.5.1', '2.6', '2.7', '2.8'] as const, messageType === 'OMI^O23' ? '2.5.1' : '2.3'),
      receivingApplication: read.str(`${at}.receivingApplication`, 'RIS'), receivingFacility: read.str(`${at}.receivingFacility`, ''),
      statuses: statuses.filter((s): s is OutboundStatus => (OUTBOUND_STATUSES as readonly string[]).includes(s)),
      echoHl7: read.bool(`${at}.echoHl7`, false),
      reports: read.bool(`${at}.reports`, false),
      reportValueType: read.oneOf(`${at}.reportValueType`, ['TX', 'FT'] as const, 'TX'),
      echoReports: read.bool(`${at}.echoReports`, false),
      ackTimeoutSeconds: read.int(`${at}.ackTimeoutSeconds`, 30, 1, 3600),
      maxAttempts: read.int(`${at}.maxAttempts`, 10, 1, 1000),
    });
    if (messageType === 'OMI^O23' && ['2.3', '2.3.1', '2.4'].includes(destinations.at(-1)!.version)) problems.push(`${at}: OMI^O23 exists from HL7 v2.5 on`);
  }
  return destinations;
}

const HL7_KEYS = ['enabled', 'host', 'port', 'tls', 'applicationName', 'facilityName', 'allowedSenders', 'allowedAddresses', 'maxFrameKiB', 'idleTimeoutSeconds'];

/** The `ris` section of atrium.json and its ATRIUM_RIS_* variables (docs/configuration.md). */
export const risConfig: ConfigSection<RisSettings> = {
  key: 'ris',
  keys: ['hl7', 'hl7Destinations'],
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
    ATRIUM_RIS_HL7_TLS_REQUIRE_CLIENT_CERT: 'ris.hl7.tls.requireClientCert',
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
      hl7Destinations: loadDestinations(read, problems),
    };
  },
};
