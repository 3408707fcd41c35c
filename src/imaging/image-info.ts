// What rendering and decoding need to know about an image, read from the instance's DICOM JSON (the index
// keeps it, so no blob is opened for it) and, for lookup-table data the index keeps as BulkDataURI only,
// from the object's header (see frame-source.ts). Plain data: it crosses to the worker threads.

export interface PaletteLut {
  /** Number of entries, value of the first mapped input, bits per entry (PS3.3 C.7.6.3.1.5). */
  descriptor: [number, number, number];
  /** Entries, one per input value from the first mapped one. */
  data: Uint16Array;
}

export interface ImageInfo {
  transferSyntaxUid: string;
  rows: number;
  columns: number;
  samplesPerPixel: number;
  bitsAllocated: number;
  bitsStored: number;
  highBit: number;
  /** 0 unsigned, 1 two's complement. */
  pixelRepresentation: number;
  photometricInterpretation: string;
  /** 0 color-by-pixel, 1 color-by-plane (native only). */
  planarConfiguration: number;
  numberOfFrames: number;
  /** Modality LUT (PS3.3 C.11.1), per frame when the functional groups say so. */
  rescaleSlope: number;
  rescaleIntercept: number;
  /** VOI (PS3.3 C.11.2): every window the object proposes; the first is used. */
  windowCenters: number[];
  windowWidths: number[];
  voiLutFunction: string;
  /** PALETTE COLOR (PS3.3 C.7.6.3.1.5); filled in by the frame source. */
  palette?: { red: PaletteLut; green: PaletteLut; blue: PaletteLut };
  /** Float Pixel Data / Double Float Pixel Data (7FE0,0008 / 0009). */
  floatPixels?: 32 | 64;
}

type Json = Record<string, { vr: string; Value?: unknown[]; BulkDataURI?: string; InlineBinary?: string }>;

const key = (tag: number) => tag.toString(16).toUpperCase().padStart(8, '0');

function values(ds: Json | undefined, tag: number): unknown[] | undefined {
  return ds?.[key(tag)]?.Value;
}

function num(ds: Json | undefined, tag: number): number | undefined {
  const v = values(ds, tag)?.[0];
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : undefined;
}

function nums(ds: Json | undefined, tag: number): number[] {
  return (values(ds, tag) ?? []).map((v) => Number(v)).filter((n) => Number.isFinite(n));
}

function str(ds: Json | undefined, tag: number): string | undefined {
  const v = values(ds, tag)?.[0];
  return typeof v === 'string' ? v.trim() : undefined;
}

function item(ds: Json | undefined, tag: number, index = 0): Json | undefined {
  const v = values(ds, tag)?.[index];
  return v && typeof v === 'object' ? (v as Json) : undefined;
}

export const Tags = {
  TransferSyntaxUID: 0x00020010,
  SamplesPerPixel: 0x00280002,
  PhotometricInterpretation: 0x00280004,
  PlanarConfiguration: 0x00280006,
  NumberOfFrames: 0x00280008,
  Rows: 0x00280010,
  Columns: 0x00280011,
  BitsAllocated: 0x00280100,
  BitsStored: 0x00280101,
  HighBit: 0x00280102,
  PixelRepresentation: 0x00280103,
  WindowCenter: 0x00281050,
  WindowWidth: 0x00281051,
  RescaleIntercept: 0x00281052,
  RescaleSlope: 0x00281053,
  VOILUTFunction: 0x00281056,
  RedPaletteColorLookupTableDescriptor: 0x00281101,
  GreenPaletteColorLookupTableDescriptor: 0x00281102,
  BluePaletteColorLookupTableDescriptor: 0x00281103,
  RedPaletteColorLookupTableData: 0x00281201,
  GreenPaletteColorLookupTableData: 0x00281202,
  BluePaletteColorLookupTableData: 0x00281203,
  SegmentedRedPaletteColorLookupTableData: 0x00281221,
  SegmentedGreenPaletteColorLookupTableData: 0x00281222,
  SegmentedBluePaletteColorLookupTableData: 0x00281223,
  SharedFunctionalGroupsSequence: 0x52009229,
  PerFrameFunctionalGroupsSequence: 0x52009230,
  PixelValueTransformationSequence: 0x00289145,
  FrameVOILUTSequence: 0x00289132,
  FloatPixelData: 0x7fe00008,
  DoubleFloatPixelData: 0x7fe00009,
  PixelData: 0x7fe00010,
} as const;

/** Has this instance pixel data at all (images, not SR, RT plans, waveforms...)? */
export function hasPixelData(metadata: unknown): boolean {
  const ds = metadata as Json;
  return [Tags.PixelData, Tags.FloatPixelData, Tags.DoubleFloatPixelData].some((t) => ds[key(t)] !== undefined);
}

/**
 * The image attributes of `metadata` for frame `frame` (1-based): the Image Pixel module, the Modality LUT
 * and VOI LUT modules, and for enhanced multi-frame objects the Pixel Value Transformation and Frame VOI
 * LUT functional groups (per-frame ones override the shared ones, PS3.3 C.7.6.16).
 */
export function imageInfoFromMetadata(metadata: unknown, transferSyntaxUid: string, frame = 1): ImageInfo {
  const ds = metadata as Json;
  const samplesPerPixel = num(ds, Tags.SamplesPerPixel) ?? 1;
  const bitsAllocated = num(ds, Tags.BitsAllocated) ?? 16;
  const bitsStored = num(ds, Tags.BitsStored) ?? bitsAllocated;
  const info: ImageInfo = {
    transferSyntaxUid,
    rows: num(ds, Tags.Rows) ?? 0,
    columns: num(ds, Tags.Columns) ?? 0,
    samplesPerPixel,
    bitsAllocated,
    bitsStored,
    highBit: num(ds, Tags.HighBit) ?? bitsStored - 1,
    pixelRepresentation: num(ds, Tags.PixelRepresentation) ?? 0,
    photometricInterpretation: (str(ds, Tags.PhotometricInterpretation) ?? (samplesPerPixel === 3 ? 'RGB' : 'MONOCHROME2')).toUpperCase(),
    planarConfiguration: num(ds, Tags.PlanarConfiguration) ?? 0,
    numberOfFrames: Math.max(1, Math.trunc(num(ds, Tags.NumberOfFrames) ?? 1)),
    rescaleSlope: num(ds, Tags.RescaleSlope) ?? 1,
    rescaleIntercept: num(ds, Tags.RescaleIntercept) ?? 0,
    windowCenters: nums(ds, Tags.WindowCenter),
    windowWidths: nums(ds, Tags.WindowWidth),
    voiLutFunction: (str(ds, Tags.VOILUTFunction) ?? 'LINEAR').toUpperCase(),
  };
  if (ds[key(Tags.FloatPixelData)]) info.floatPixels = 32;
  if (ds[key(Tags.DoubleFloatPixelData)]) info.floatPixels = 64;
  if (info.rescaleSlope === 0) info.rescaleSlope = 1;

  for (const groups of [item(ds, Tags.SharedFunctionalGroupsSequence), item(ds, Tags.PerFrameFunctionalGroupsSequence, frame - 1)]) {
    const pvt = item(groups, Tags.PixelValueTransformationSequence);
    if (pvt) {
      info.rescaleSlope = num(pvt, Tags.RescaleSlope) || info.rescaleSlope;
      info.rescaleIntercept = num(pvt, Tags.RescaleIntercept) ?? info.rescaleIntercept;
    }
    const voi = item(groups, Tags.FrameVOILUTSequence);
    if (voi && nums(voi, Tags.WindowCenter).length > 0) {
      info.windowCenters = nums(voi, Tags.WindowCenter);
      info.windowWidths = nums(voi, Tags.WindowWidth);
      info.voiLutFunction = (str(voi, Tags.VOILUTFunction) ?? info.voiLutFunction).toUpperCase();
    }
  }
  return info;
}

/** Bytes of one native (uncompressed) frame; 1-bit frames are packed (PS3.5 8.1.1), YBR_*_422 subsampled (PS3.5 8.2.6). */
export function nativeFrameBits(info: ImageInfo): number {
  const pixels = info.rows * info.columns;
  if (info.photometricInterpretation === 'YBR_FULL_422' || info.photometricInterpretation === 'YBR_PARTIAL_422') {
    return pixels * 2 * info.bitsAllocated;
  }
  return pixels * info.samplesPerPixel * info.bitsAllocated;
}
