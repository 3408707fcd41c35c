/**
 * The concept names of the radiation dose templates of PS3.16 that extraction reads, named as the standard
 * names them: TID 10011 (CT Radiation Dose), 10012/10013 (CT Accumulated Dose Data, CT Irradiation Event
 * Data), 10001 (Projection X-Ray Radiation Dose), 10002/10004/10005/10007 (accumulated data: projection,
 * fluoroscopy, mammography), 10003 (Irradiation Event X-Ray Data) and its 10003A/B/C sub-templates, and
 * 10021 (Radiopharmaceutical Radiation Dose). Codes are "<CodeValue>^<CodingSchemeDesignator>"; where the
 * standard moved from SNOMED RT (SRT) to SNOMED CT (SCT) both are listed (older devices still send SRT).
 */
export const SOP_CLASS = {
  XRayRadiationDoseSR: '1.2.840.10008.5.1.4.1.1.88.67',
  RadiopharmaceuticalRadiationDoseSR: '1.2.840.10008.5.1.4.1.1.88.68',
  EnhancedSR: '1.2.840.10008.5.1.4.1.1.88.22',
  ComprehensiveSR: '1.2.840.10008.5.1.4.1.1.88.33',
  Comprehensive3DSR: '1.2.840.10008.5.1.4.1.1.88.34',
} as const;

/** SOP classes that can carry a dose report: the two dose SRs, and the general SRs some devices use for it. */
export const DOSE_CARRYING_SOP_CLASSES: readonly string[] = Object.values(SOP_CLASS);

/** Document titles (root CONTAINER concept names). */
export const XRayRadiationDoseReport = '113701^DCM';
export const RadiopharmaceuticalRadiationDoseReport = '113500^DCM';

export const CODES = {
  // Context of the report (TID 10001/10011 rows 2-5)
  ProcedureReported: '121058^DCM',
  // TID 10011 / 10012 / 10013: CT
  CTAccumulatedDoseData: '113811^DCM',
  CTDoseLengthProductTotal: '113813^DCM',
  TotalNumberOfIrradiationEvents: '113812^DCM',
  CTAcquisition: '113819^DCM',
  CTAcquisitionType: '113820^DCM',
  CTAcquisitionParameters: '113822^DCM',
  CTDose: '113829^DCM',
  MeanCTDIvol: '113830^DCM',
  DLP: '113838^DCM',
  CTDIwPhantomType: '113835^DCM',
  ScanningLength: '113825^DCM',
  PitchFactor: '113828^DCM',
  ExposureTimePerRotation: '113834^DCM',
  // Both CT (TID 10013) and projection (TID 10003B)
  AcquisitionProtocol: '125203^DCM',
  TargetRegion: '123014^DCM',
  IrradiationEventUID: '113769^DCM',
  KVP: '113733^DCM',
  XRayTubeCurrent: '113734^DCM',
  ExposureTime: '113824^DCM',
  Exposure: '113736^DCM',
  // TID 10001 / 10002 / 10004 / 10005: projection X-ray accumulated data
  AccumulatedXRayDoseData: '113702^DCM',
  AcquisitionPlane: '113764^DCM',
  DoseAreaProductTotal: '113722^DCM',
  DoseRPTotal: '113725^DCM',
  FluoroDoseAreaProductTotal: '113726^DCM',
  AcquisitionDoseAreaProductTotal: '113727^DCM',
  FluoroDoseRPTotal: '113728^DCM',
  AcquisitionDoseRPTotal: '113729^DCM',
  TotalFluoroTime: '113730^DCM',
  TotalAcquisitionTime: '113855^DCM',
  TotalNumberOfRadiographicFrames: '113731^DCM',
  AccumulatedAverageGlandularDose: '111637^DCM',
  // TID 10003: Irradiation Event X-Ray Data
  IrradiationEventXRayData: '113706^DCM',
  IrradiationEventType: '113721^DCM',
  DateTimeStarted: '111526^DCM',
  DoseAreaProduct: '122130^DCM',
  DoseRP: '113738^DCM',
  AverageGlandularDose: '111631^DCM',
  EntranceExposureAtRP: '111636^DCM',
  CompressionThickness: '111633^DCM',
  ImageView: '111031^DCM',
  // Laterality, the concept modifier on AGD and anatomy
  LateralitySRT: 'G-C171^SRT',
  LateralitySCT: '272741003^SCT',
  AnatomicalStructureSRT: 'T-D0005^SRT',
  AnatomicalStructureSCT: '91723000^SCT',
  // TID 10021: Radiopharmaceutical Radiation Dose
  RadiopharmaceuticalAdministration: '113502^DCM',
  AdministeredActivity: '113507^DCM',
  RadiopharmaceuticalAgentSRT: 'F-61FDB^SRT',
  RadiopharmaceuticalAgentSCT: '349358000^SCT',
  RadionuclideSRT: 'C-10072^SRT',
  RadionuclideSCT: '89457008^SCT',
  RadiopharmaceuticalAdministrationEventUid: '113503^DCM',
  RadiopharmaceuticalStartDateTime: '123003^DCM',
  RouteOfAdministrationSRT: 'G-C340^SRT',
  RouteOfAdministrationSCT: '410675002^SCT',
  SiteOfSRT: 'G-C581^SRT',
  SiteOfSCT: '272737002^SCT',
} as const;

/** Procedure Reported values (CID 10000) telling CT and mammography from other projection X-ray. */
export const PROCEDURE_CT = ['P5-08000^SRT', '77477000^SCT'];
export const PROCEDURE_MAMMOGRAPHY = ['P5-40010^SRT', '71651007^SCT'];
/** Irradiation Event Type Fluoroscopy (CID 10002). */
export const EVENT_TYPE_FLUOROSCOPY = ['P5-06000^SRT', '44491008^SCT'];
