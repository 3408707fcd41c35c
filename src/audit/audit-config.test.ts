/** The `audit` section of the configuration: defaults, environment, validation. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig, ConfigError } from '../config/config.ts';

test('audit: no syslog by default; the environment enables it with per-protocol default ports', () => {
  assert.deepEqual(loadConfig({ env: {} }).audit, { syslog: null, retentionDays: null });
  assert.deepEqual(loadConfig({ env: { ATRIUM_AUDIT_SYSLOG_HOST: 'arr.example' } }).audit.syslog,
    { host: 'arr.example', port: 514, protocol: 'udp', appName: 'atrium', ca: null, cert: null, key: null });
  const tls = loadConfig({ env: { ATRIUM_AUDIT_SYSLOG_HOST: 'arr.example', ATRIUM_AUDIT_SYSLOG_PROTOCOL: 'tls' } }).audit.syslog;
  assert.equal(tls?.port, 6514);
  assert.equal(loadConfig({ env: { ATRIUM_AUDIT_SYSLOG_HOST: 'h', ATRIUM_AUDIT_SYSLOG_PORT: '601', ATRIUM_AUDIT_SYSLOG_PROTOCOL: 'tcp' } }).audit.syslog?.port, 601);
});

test('audit: problems are listed readably', () => {
  assert.throws(() => loadConfig({ env: { ATRIUM_AUDIT_SYSLOG_PORT: '70000', ATRIUM_AUDIT_SYSLOG_PROTOCOL: 'smtp' } }), (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.match(error.message, /audit\.syslog\.host \(ATRIUM_AUDIT_SYSLOG_HOST\) is required/);
    assert.match(error.message, /audit\.syslog\.protocol \(ATRIUM_AUDIT_SYSLOG_PROTOCOL\) must be one of udp, tcp, tls/);
    assert.match(error.message, /audit\.syslog\.port must be a whole number from 1 to 65535/);
    return true;
  });
});
