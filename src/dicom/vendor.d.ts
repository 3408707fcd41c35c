// Ambient declarations for untyped dependencies used by the DICOM codec.

declare module 'dicom-character-set' {
  export function convertBytes(
    specificCharacterSet: string | undefined,
    bytes: Uint8Array,
    options?: { vr?: string },
  ): string;
}

declare module 'dcmjs' {
  interface DictionaryEntry { tag: string; vr: string; vm: string; name: string; version?: string }
  const dcmjs: {
    data: { DicomMetaDictionary: { nameMap: Record<string, DictionaryEntry> } };
  };
  export default dcmjs;
}

declare module 'pako' {
  export class Inflate {
    constructor(options?: { raw?: boolean; chunkSize?: number });
    push(data: Uint8Array, flushOrFinish?: boolean | number): boolean;
    onData: (chunk: Uint8Array) => void;
    err: number;
    msg: string;
    ended: boolean;
  }
  const pako: { Inflate: typeof Inflate };
  export default pako;
}
