/**
 * What every DICOMweb handler is given: the options of the service and the archive behind it. Apart from
 * routes.ts so that the handlers (qido.ts, wado.ts, ...) and the routes that register them do not import
 * each other.
 */
import type { Readable } from 'node:stream';
import type { FastifyRequest } from 'fastify';
import type { Archive } from '../app.ts';

/** Renders an instance or one frame (image/jpeg, image/png...): the rendering service plugs in here. */
export type RenderFunction = (sopInstanceUid: string, frame: number | undefined, params: Record<string, string>) =>
  Promise<{ contentType: string; body: Uint8Array | Readable }>;

export interface DicomwebOptions {
  /** Public base URL of the service (e.g. "https://pacs.example.org/dicom-web"); default: from the request's Host. */
  baseUrl?: string;
  /**
   * Origins allowed by CORS; default ["*"] (any), since viewers such as OHIF are often served elsewhere. The
   * same list applies to every DICOMweb route: give the same options to stowRoutes and renderedRoutes.
   */
  corsOrigins?: string[];
  /** WADO-URI rendering (contentType=image/jpeg...); without it such requests answer 406. */
  render?: RenderFunction;
  /** QIDO-RS: results when the client gives no limit (default 100), and the largest limit honoured (default 1000). */
  defaultLimit?: number;
  maxLimit?: number;
  /** Where access control plugs in: called before every DICOMweb handler; throw to refuse. */
  authorize?: (request: FastifyRequest) => Promise<void> | void;
}

/**
 * The archive services DICOMweb uses: the index (QIDO, the study structure), ingest (STOW-RS), the retrieve
 * service (every read of stored bytes), the audit trail of stores, the configuration and the log.
 */
export type DicomwebServices = Pick<Archive, 'config' | 'log' | 'index' | 'ingest' | 'retrieve' | 'audit'>;

export interface DicomwebContext {
  archive: DicomwebServices;
  options: DicomwebOptions;
  /** The absolute URL of the service root, for RetrieveURL, BulkDataURI and Content-Location. */
  baseUrl(request: FastifyRequest): string;
}

export const DICOMWEB_PREFIX = '/dicom-web';
