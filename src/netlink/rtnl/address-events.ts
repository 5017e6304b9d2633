// Address changes as the kernel announces them: an rtnetlink socket that joins the IPv4 and IPv6
// address multicast groups (`ip monitor address`) and reports each RTM_NEWADDR and RTM_DELADDR.
// A receive buffer that overflowed (ENOBUFS) loses events; the listener is then told that it
// must read the addresses again (`overflowed`), as every netlink listener must.
import { RawNetlinkSocket } from 'netlink/dist/raw.js';
import { NETLINK_ROUTE } from '../connection.js';
import { parseMessages } from '../message.js';
import { withNetworkNamespace } from '../netns.js';
import { decodeAddress } from './codec.js';
import type { InterfaceAddress } from './types.js';
import { RTM_DELADDR, RTM_NEWADDR, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR } from './wire.js';

export type AddressEvent =
  | { readonly kind: 'added' | 'removed'; readonly address: InterfaceAddress }
  /** Events were lost (ENOBUFS) or could not be read: read every address again. */
  | { readonly kind: 'overflowed'; readonly reason: string };

export interface AddressEvents {
  close(): void;
}

/** Calls `listener` for every address added or removed in the namespace (`netns`, or the agent's own). */
export function watchAddressEvents(listener: (event: AddressEvent) => void, options: { readonly netns?: string } = {}): AddressEvents {
  const socket = withNetworkNamespace(options.netns, () => {
    const opened = new RawNetlinkSocket(NETLINK_ROUTE, { recvBufferSize: 1024 * 1024, sendBufferSize: 4096, messagePeeking: false, msgBufferSize: 32 * 1024 });
    opened.addMembership(RTNLGRP_IPV4_IFADDR);
    opened.addMembership(RTNLGRP_IPV6_IFADDR);
    return opened;
  });
  socket.on('message', (data) => {
    let events: AddressEvent[];
    try {
      events = parseMessages(data).flatMap((message): AddressEvent[] => {
        if (message.type !== RTM_NEWADDR && message.type !== RTM_DELADDR) return [];
        const address = decodeAddress(message.payload);
        return address ? [{ kind: message.type === RTM_NEWADDR ? 'added' : 'removed', address }] : [];
      });
    } catch (error) {
      events = [{ kind: 'overflowed', reason: `cannot decode an address event: ${(error as Error).message}` }];
    }
    for (const event of events) listener(event);
  });
  socket.on('truncatedMessage', () => {
    listener({ kind: 'overflowed', reason: 'an address event was truncated' });
  });
  socket.on('error', (error) => {
    listener({ kind: 'overflowed', reason: `address events: ${error.code}` });
  });
  // Never keeps the process alive by itself.
  socket.unref();
  return {
    close: () => {
      socket.close();
    },
  };
}
