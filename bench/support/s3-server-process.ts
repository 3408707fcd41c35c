/**
 * s3rver (test/support/s3-server.ts, with its shims) in a process of its own, for bench:cluster: the S3
 * store's CPU is then its own, not the benchmark's, and measurable. Prints one JSON line (endpoint,
 * bucket, keys) on stdout once listening; stops on SIGTERM.
 */
import { startS3Server } from '../../test/support/s3-server.ts';

const s3 = await startS3Server();
console.log(JSON.stringify({ endpoint: s3.endpoint, bucket: s3.bucket, region: s3.region, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey }));
process.once('SIGTERM', () => { void s3.stop().finally(() => process.exit(0)); });
