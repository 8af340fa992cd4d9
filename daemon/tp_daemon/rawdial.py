"""Raw dials: in direct connect, each tunneled connection is its own TLS connection to the
traffic-manager's raw dial port (manager.proto `RawDialHeader`), not a gRPC `Tunnel`.

The bytes then pay TLS records only, no gRPC/protobuf framing per chunk on either end.
The TLS handshake accepts only the certificate pinned for direct connect (read through
the API server, as for the gRPC channel). The header proves the dial is this session's
with the session's `dial_secret`, which the manager gave only in the ArriveAsClient
answer of the authenticated session. When the manager offers no raw dial port (an older
version) or the port does not answer, connections go through gRPC `Tunnel`s as before:
one log line, and `tp status` tells why (`StatusInfo.raw_dial_note`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time

from tp_protocol import daemon_pb2 as dpb
from tp_protocol import manager_pb2 as mpb
from tp_protocol import rawtls
from tp_protocol.settings import ConnectSettings
from tp_protocol.tunnel import TunnelRefused

from tp_daemon.kube import DirectTarget
from tp_daemon.tunnel import TunnelBroken

log = logging.getLogger(__name__)


def _host(address: str) -> str:
    return address.rpartition(":")[0].strip("[]")


class RawDialer:
    """Raw dials to the manager at a direct-connect address; counts what went which way."""

    def __init__(self, target: DirectTarget, settings: ConnectSettings) -> None:
        self.host = _host(target.address)
        self.server_name = target.server_name
        self.context = rawtls.client_context(target.certificate)
        self.settings = settings
        self.raw_dials = 0
        self.grpc_dials = 0
        self.note = ""
        """Why raw dials are not used ("" = they are)."""
        self._retry_at = 0.0      # monotonic time to try the raw port again (0 = any time)
        self._offered: str = ""   # the session whose answer offered no raw dial port

    def _give_up(self, why: str, retry_after: float = 0.0) -> None:
        note = f"raw dials not used: {why}; tunneling through gRPC"
        # said once: dials failing together, or again after the retry time, repeat it
        (log.debug if note == self.note else log.warning)("%s", note)
        self.note = note
        self._retry_at = time.monotonic() + retry_after if retry_after else 0.0

    def _usable(self, session: mpb.SessionInfo) -> bool:
        if not (session.raw_dial_port and session.dial_secret):
            if self._offered != session.session_id:  # once per session (a new manager
                self._offered = session.session_id   # may offer it after a re-arrival)
                self._give_up("the traffic-manager offers no raw dial port (an older "
                              "version)")
            return False
        # after the port did not answer: not before the retry time
        return not (self.note and self._retry_at and time.monotonic() < self._retry_at)

    async def dial(self, session: mpb.SessionInfo, ip: str, port: int
                   ) -> rawtls.TlsStream | None:
        """A raw stream to `ip:port`, or None: use a gRPC `Tunnel` (raw dials unavailable).

        Raises TunnelBroken (caused by TunnelRefused(code, message)) when the manager
        refused or could not dial, as `TunnelStream.open` does. A raw port that did not
        answer is tried again after `connect.raw_dial_retry_interval` (e.g. a manager pod
        that was restarting)."""
        if not self._usable(session):
            self.grpc_dials += 1
            return None
        where = f"{self.host}:{session.raw_dial_port}"
        try:
            async with asyncio.timeout(self.settings.raw_dial_connect_timeout):
                stream = await rawtls.TlsStream.connect(
                    self.host, session.raw_dial_port, self.context, self.server_name,
                    self.settings.raw_dial_chunk)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            self._give_up(f"{where} does not answer ({_why(exc)})",
                          self.settings.raw_dial_retry_interval)
            self.grpc_dials += 1
            return None
        if self.note:
            log.info("raw dials to %s work again", where)
            self.note = ""
        try:
            async with asyncio.timeout(self.settings.dial_timeout):
                await rawtls.send_message(stream, mpb.RawDialHeader(
                    session_id=session.session_id, dial_secret=session.dial_secret, ip=ip,
                    port=port), magic=True)
                answer = await rawtls.read_message(stream, mpb.RawDialAnswer)
        except TimeoutError:
            stream.abort()
            refused = TunnelRefused("timeout", f"no answer within "
                                               f"{self.settings.dial_timeout:g}s")
            raise _broken(ip, port, refused) from refused
        except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
            stream.abort()
            refused = TunnelRefused("unreachable", f"the raw dial broke ({exc})")
            raise _broken(ip, port, refused) from refused
        if not answer.ok:
            await stream.close()
            refused = TunnelRefused(answer.code, answer.message)
            raise _broken(ip, port, refused) from refused
        stream.label = answer.remote_address or f"{ip}:{port}"
        self.raw_dials += 1
        return stream

    def report(self, status: dpb.StatusInfo) -> None:
        status.raw_dials, status.grpc_dials = self.raw_dials, self.grpc_dials
        status.raw_dial_note = self.note


def _broken(ip: str, port: int, refused: TunnelRefused) -> TunnelBroken:
    """The error `Session.dial` callers know (raised from the refusal, as there)."""
    return TunnelBroken(f"tunnel to {ip}:{port} failed: {refused}")


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "TLS failed: not the certificate the cluster published"
    if isinstance(exc, OSError) and exc.errno:  # asyncio's text names no reason
        return os.strerror(exc.errno).lower()
    return str(exc)
