"""The committed stubs are exactly what `python protocol/generate.py` produces."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "protocol" / "tp_protocol"


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tp_generate", ROOT / "protocol" / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["tp_generate"] = module
    spec.loader.exec_module(module)
    return module


def test_regenerated_stubs_match_the_committed_ones(tmp_path: Path) -> None:
    written = _load_generator().generate(tmp_path)
    names = sorted(p.name for p in written)
    committed = sorted(
        p.name for p in COMMITTED.iterdir() if p.name.endswith(("_pb2.py", "_pb2.pyi",
                                                                "_pb2_grpc.py", "_pb2_grpc.pyi"))
    )
    assert names == committed, "stub files differ: run `python protocol/generate.py`"
    stale = [p.name for p in written if p.read_bytes() != (COMMITTED / p.name).read_bytes()]
    assert stale == [], f"stale stubs {stale}: run `python protocol/generate.py`"


def test_every_proto_has_its_stubs() -> None:
    for proto in COMMITTED.glob("*.proto"):
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi"):
            assert (COMMITTED / f"{proto.stem}{suffix}").exists()


def test_the_daemon_stubs_import_the_manager_messages_by_package_name() -> None:
    from tp_protocol import daemon_pb2, manager_pb2

    info = daemon_pb2.ConnectInfo(cluster_info=manager_pb2.ClusterInfo(service_cidr="10.96.0.0/16"))
    assert daemon_pb2.ConnectInfo.FromString(info.SerializeToString()) == info


def test_a_tunnel_message_carries_exactly_one_kind() -> None:
    from tp_protocol import manager_pb2

    message = manager_pb2.TunnelMessage(data=b"abc")
    message.close_write.SetInParent()
    assert message.WhichOneof("kind") == "close_write"
