import type { AtriumModule } from '../modules/module.ts';
import { risOf } from '../ris/module.ts';
import { migration as searchIndexes } from './migrations/0017_fhir_search_indexes.ts';
import { FHIR_OWN_STUDIES_LISTINGS, FHIR_ROUTE_RULES, fhirRoutes } from './routes.ts';

/**
 * The FHIR R4 server (issue 10) at /fhir/R4: Patient, ImagingStudy, Endpoint, ServiceRequest and
 * DiagnosticReport generated with SQL from the index and the RIS, written through the RIS's services.
 * See docs/fhir.md.
 */
export const fhirModule: AtriumModule = {
  name: 'fhir',
  migrations: [searchIndexes],
  routeRules: FHIR_ROUTE_RULES,
  ownStudiesListings: FHIR_OWN_STUDIES_LISTINGS,
  httpRoutes: async (app, archive) => {
    await fhirRoutes(app, archive, risOf(archive));
  },
};
