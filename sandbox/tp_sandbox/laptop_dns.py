"""`python -m tp_sandbox.laptop_dns --netns NS`: a laptop's "system resolver".

A laptop has no default route, so, like systemd-resolved's stub, this small server
on 127.0.0.53:53 (UDP and TCP, inside the laptop's namespace) is what its
resolv.conf names. It is authoritative for `laptop.test`:

    upstream.laptop.test  A  127.0.0.1
    laptop.laptop.test    A  <the laptop's address>

and answers NXDOMAIN for every other name. `tp connect` later redirects port 53 to
its own resolver and forwards non-cluster names here, which makes "other names
still reach the upstream resolver" testable.

Two named threads serve UDP and TCP; a failure in either is logged and ends the
process (the supervisor restarts it).

Errors: `LaptopDnsError` (the namespace or its address cannot be found).
"""

from __future__ import annotations

import argparse
import logging
import socket
import struct
import subprocess
import sys
import threading

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from tp_protocol.settings import get_settings

from tp_sandbox import netns

log = logging.getLogger("tp_sandbox.laptop_dns")

LISTEN = ("127.0.0.53", 53)
ZONE = dns.name.from_text("laptop.test.")


class LaptopDnsError(RuntimeError):
    """The laptop namespace or its address is missing."""


class Zone:
    """The records of `laptop.test` and how queries are answered from them."""

    def __init__(self, laptop_address: str, ttl: int) -> None:
        self.ttl = ttl
        self.records = {
            dns.name.from_text("upstream.laptop.test."): "127.0.0.1",
            dns.name.from_text("laptop.laptop.test."): laptop_address,
        }

    def answer(self, wire: bytes) -> bytes | None:
        """The response to one query in wire format (None for garbage)."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None
        response = dns.message.make_response(query)
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        q = query.question[0]
        response.flags |= dns.flags.RA
        if q.name in self.records:
            response.flags |= dns.flags.AA
            if q.rdtype in (dns.rdatatype.A, dns.rdatatype.ANY):
                response.answer.append(dns.rrset.from_text(
                    q.name, self.ttl, dns.rdataclass.IN, dns.rdatatype.A, self.records[q.name]))
        else:
            if q.name.is_subdomain(ZONE):
                response.flags |= dns.flags.AA
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response.to_wire()


def laptop_address(ns: str) -> str:
    """The IPv4 address of `eth0` in namespace `ns`."""
    proc = subprocess.run(["ip", "-n", ns, "-4", "-o", "addr", "show", "dev", "eth0"],
                          capture_output=True, text=True,
                          timeout=get_settings().sandbox.command_timeout, check=False)
    for word_list in (line.split() for line in proc.stdout.splitlines()):
        if "inet" in word_list:
            return word_list[word_list.index("inet") + 1].split("/")[0]
    raise LaptopDnsError(f"no IPv4 address on eth0 in netns {ns!r}; is the sandbox up?")


def serve_udp(sock: socket.socket, zone: Zone) -> None:
    while True:
        wire, peer = sock.recvfrom(65535)
        reply = zone.answer(wire)
        if reply is not None:
            sock.sendto(reply, peer)


def _recv_exact(conn: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _serve_tcp_conn(conn: socket.socket, zone: Zone) -> None:
    with conn:
        conn.settimeout(get_settings().sandbox.laptop_dns_tcp_idle)
        try:
            while (head := _recv_exact(conn, 2)) is not None:
                wire = _recv_exact(conn, struct.unpack("!H", head)[0])
                reply = zone.answer(wire) if wire else None
                if reply is None:
                    return
                conn.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError:
            return


def serve_tcp(sock: socket.socket, zone: Zone) -> None:
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=_serve_tcp_conn, args=(conn, zone), daemon=True,
                         name="laptop-dns-tcp-conn").start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tp_sandbox.laptop_dns")
    parser.add_argument("--netns", required=True, help="the laptop's network namespace")
    parser.add_argument("--address", help="the laptop's address (default: eth0's)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s laptop-dns %(levelname)s %(message)s")
    try:
        if not netns.exists(args.netns):
            raise LaptopDnsError(f"netns {args.netns!r} does not exist; run 'tp sandbox up'")
        zone = Zone(args.address or laptop_address(args.netns),
                    get_settings().sandbox.laptop_dns_ttl)
        udp = netns.socket_in(args.netns, socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(LISTEN)
        tcp = netns.socket_in(args.netns, socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind(LISTEN)
        tcp.listen(64)
    except (LaptopDnsError, OSError) as e:
        print(f"laptop-dns: {e}", file=sys.stderr)
        return 1
    log.info("serving laptop.test on %s:%d in %s", *LISTEN, args.netns)
    failed = threading.Event()

    def guarded(target: object, sock: socket.socket) -> None:
        try:
            target(sock, zone)  # type: ignore[operator]
        except Exception:
            log.exception("%s failed", threading.current_thread().name)
        finally:
            failed.set()

    for name, target, sock in (("laptop-dns-udp", serve_udp, udp),
                               ("laptop-dns-tcp", serve_tcp, tcp)):
        threading.Thread(target=guarded, args=(target, sock), daemon=True, name=name).start()
    try:
        failed.wait()
    except KeyboardInterrupt:
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
