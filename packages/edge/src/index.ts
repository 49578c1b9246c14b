// Public surface of the edge package: the protocol codecs the data plane is built on.
export * as pg from './pg/protocol/index.ts';
