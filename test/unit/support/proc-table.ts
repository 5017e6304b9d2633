import { addressToBytes } from '../../../src/ip.js';
import type { ProcVirtualServer } from '../../../src/netlink/ipvs/proc-table.js';

// /proc/net/ip_vs as the kernel prints it: the kernel's own format strings (ip_vs_info_seq_show() in net/netfilter/ipvs/ip_vs_ctl.c),
// rendered here independently of the parser.
export const PROC_HEADER =
  'IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n';
const hex = (value: number, digits: number): string => value.toString(16).toUpperCase().padStart(digits, '0');
/** %pI6: eight groups of four lower-case hex digits, never compressed. */
const pI6 = (address: string): string => (addressToBytes(address).toString('hex').match(/.{4}/g) ?? []).join(':');
const ipv4Hex = (address: string): string => hex(addressToBytes(address).readUInt32BE(0), 8);
const pad = (text: string | number, width: number): string => String(text).padEnd(width, ' ');
/** A service's key as text, to sort and deduplicate by. */
export const procKeyText = (s: ProcVirtualServer): string => ('fwmark' in s.key ? `FWM ${s.key.fwmark}` : `${s.key.protocol} ${s.key.address} ${s.key.port}`);
const FORWARD_NAMES = { masq: 'Masq', local: 'Local', tunnel: 'Tunnel', route: 'Route' } as const;

export function renderProcTable(services: readonly ProcVirtualServer[]): string {
  let text = PROC_HEADER;
  for (const service of services) {
    const ops = service.onePacket ? 'ops ' : '';
    if ('fwmark' in service.key) text += `FWM  ${hex(service.key.fwmark, 8)} ${service.scheduler} ${ops}`;
    else if (service.key.family === 'inet6') text += `${service.key.protocol}  [${pI6(service.key.address)}]:${hex(service.key.port, 4)} ${service.scheduler} `;
    else text += `${service.key.protocol}  ${ipv4Hex(service.key.address)}:${hex(service.key.port, 4)} ${service.scheduler} ${ops}`;
    text += service.persistent ? `persistent ${service.persistent.timeout} ${hex(service.persistent.netmask, 8)}\n` : '\n';
    for (const d of service.destinations) {
      const where = d.family === 'inet6' ? `[${pI6(d.address)}]:${hex(d.port, 4)}` : `${ipv4Hex(d.address)}:${hex(d.port, 4)}`;
      text += `  -> ${where}      ${pad(FORWARD_NAMES[d.forwarding], 7)} ${pad(d.weight, 6)} ${pad(d.activeConns, 10)} ${pad(d.inactiveConns, 10)}\n`;
    }
  }
  return text;
}
