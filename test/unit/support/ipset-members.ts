import { encodeAttributes, type RawAttribute } from '../../../src/netlink/attributes.js';

/** IPSET_ATTR_ADT's bytes: the members' IPSET_ATTR_DATA attributes one after another, as the kernel lists them. */
export const adtOf = (members: readonly RawAttribute[]): Buffer => encodeAttributes({}, { unknown: [...members] });
