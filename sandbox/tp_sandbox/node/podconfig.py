"""What a pod's containers see: files under the state dir, environment, mounts.

Everything is computed from the pod object and the API (config maps, secrets,
services, tokens) before containers start, in a worker thread (the client blocks):

    pods/<uid>/etc/resolv.conf, etc/hosts, etc/hostname
    pods/<uid>/volumes/<volume>/...       emptyDir, configMap, secret, downwardAPI,
                                          projected, and the service-account token

A reference to a missing ConfigMap/Secret/key raises `ConfigRefError` (the pod then
waits with reason CreateContainerConfigError and is retried).
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tp_protocol.settings import get_settings

from .. import images
from ..paths import Instance
from .errors import ApiNotFound, ConfigRefError, PodSetupError
from .kubeapi import KubeApi, Obj

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


@dataclass
class Mount:
    source: str
    target: str
    readonly: bool = False
    is_file: bool = False


@dataclass
class PodFiles:
    """The prepared pod: per-container mounts and environment."""

    mounts: dict[str, list[Mount]] = field(default_factory=dict)
    env: dict[str, dict[str, str]] = field(default_factory=dict)


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: unknown references stay, $$ escapes."""
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return _VAR_REF.sub(sub, text)


def field_ref(pod: Obj, path: str, pod_ip: str, host_ip: str) -> str:
    """The value of a downward-API fieldRef."""
    meta, spec = pod["metadata"], pod["spec"]
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return str(simple[path])
    m = re.fullmatch(r"metadata\.(labels|annotations)(?:\['([^']*)'\])?", path)
    if m:
        values = meta.get(m.group(1)) or {}
        if m.group(2) is not None:
            return str(values.get(m.group(2), ""))
        return "\n".join(f'{k}="{v}"' for k, v in sorted(values.items()))
    raise PodSetupError(f"unsupported fieldRef {path!r}: use metadata.name/namespace/uid/labels, "
                        "spec.nodeName, spec.serviceAccountName or status.podIP")


def resource_ref(container: Obj | None, ref: Obj) -> str:
    """resourceFieldRef: the limit/request if set, else a constant node-sized value."""
    res = ref.get("resource", "")
    kind, _, name = res.partition(".")
    value = ((container or {}).get("resources") or {}).get(kind, {}).get(name)
    if value is not None:
        return str(value)
    return str(os.cpu_count() or 1) if name == "cpu" else str(8 * 1024 ** 3)


class PodConfigBuilder:
    """Prepares one pod's files, mounts and environments."""

    def __init__(self, api: KubeApi, instance: Instance, pod: Obj, *, pod_dir: Path,
                 pod_ip: str, host_ip: str) -> None:
        self.api = api
        self.instance = instance
        self.pod = pod
        self.pod_dir = pod_dir
        self.pod_ip = pod_ip
        self.host_ip = host_ip
        self.ns = pod["metadata"]["namespace"]
        self._cms: dict[str, Obj | None] = {}
        self._secrets: dict[str, Obj | None] = {}

    # -- references --------------------------------------------------------------------
    def _config_map(self, name: str, optional: bool) -> dict[str, bytes] | None:
        if name not in self._cms:
            try:
                self._cms[name] = self.api.get_config_map(self.ns, name)
            except ApiNotFound:
                self._cms[name] = None
        obj = self._cms[name]
        if obj is None:
            if name == "kube-root-ca.crt":  # no publisher in the sandbox: use the instance CA
                return {"ca.crt": (self.instance.pki_dir / "ca.crt").read_bytes()}
            if optional:
                return None
            raise ConfigRefError(f'configmap "{name}" not found')
        data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        return data

    def _secret(self, name: str, optional: bool) -> dict[str, bytes] | None:
        if name not in self._secrets:
            try:
                self._secrets[name] = self.api.get_secret(self.ns, name)
            except ApiNotFound:
                self._secrets[name] = None
        obj = self._secrets[name]
        if obj is None:
            if optional:
                return None
            raise ConfigRefError(f'secret "{name}" not found')
        data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        data.update({k: v.encode() for k, v in (obj.get("stringData") or {}).items()})
        return data

    def _key(self, source: dict[str, bytes] | None, kind: str, name: str, key: str,
             optional: bool) -> str | None:
        if source is None:
            return None
        if key not in source:
            if optional:
                return None
            raise ConfigRefError(f'couldn\'t find key {key} in {kind} {self.ns}/{name}')
        return source[key].decode(errors="replace")

    # -- files -------------------------------------------------------------------------
    def write_etc(self) -> Path:
        etc = self.pod_dir / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        s = get_settings().sandbox
        dns = (self.pod["spec"].get("dnsConfig") or {})
        search = [f"{self.ns}.svc.{s.cluster_domain}", f"svc.{s.cluster_domain}",
                  s.cluster_domain, *dns.get("searches", [])]
        servers = [s.dns_service_ip, *dns.get("nameservers", [])]
        if self.pod["spec"].get("dnsPolicy") == "None":
            search, servers = list(dns.get("searches", [])), list(dns.get("nameservers", []))
        lines = [f"nameserver {ip}" for ip in servers]
        lines += [f"search {' '.join(search)}", "options ndots:5"]
        (etc / "resolv.conf").write_text("\n".join(lines) + "\n")
        name = self.pod["spec"].get("hostname") or self.pod["metadata"]["name"]
        sub = self.pod["spec"].get("subdomain")
        fqdn = f"{name}.{sub}.{self.ns}.svc.{s.cluster_domain}" if sub else ""
        hosts = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
                 f"{self.pod_ip}\t{fqdn + chr(9) if fqdn else ''}{name}"]
        for alias in self.pod["spec"].get("hostAliases") or []:
            hosts.append(f"{alias['ip']}\t{' '.join(alias.get('hostnames', []))}")
        (etc / "hosts").write_text("\n".join(hosts) + "\n")
        (etc / "hostname").write_text(name + "\n")
        return etc

    def _write_items(self, target: Path, data: dict[str, bytes], items: list[Obj] | None,
                     mode: int | None) -> None:
        chosen = [(i["key"], i["path"], i.get("mode")) for i in items] if items else \
            [(k, k, None) for k in data]
        for key, rel, item_mode in chosen:
            if key not in data:
                raise ConfigRefError(f"key {key} not found for volume item {rel}")
            path = target / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data[key])
            path.chmod(item_mode if item_mode is not None else (mode if mode is not None
                                                                 else 0o644))

    def _downward_items(self, target: Path, items: list[Obj], container_by_name: dict[str, Obj]
                        ) -> None:
        for item in items:
            path = target / item["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            if "fieldRef" in item:
                value = field_ref(self.pod, item["fieldRef"]["fieldPath"], self.pod_ip,
                                  self.host_ip)
            else:
                ref = item["resourceFieldRef"]
                value = resource_ref(container_by_name.get(ref.get("containerName", "")), ref)
            path.write_text(value)

    def _token(self, audience: str | None = None, expiration: int | None = None) -> bytes:
        sa = self.pod["spec"].get("serviceAccountName") or "default"
        exp = expiration or get_settings().node.token_expiration
        token = self.api.request_token(self.ns, sa, exp, self.pod,
                                       [audience] if audience else None)
        return token.encode()

    def _sa_files(self, target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        (target / "token").write_bytes(self._token())
        shutil.copyfile(self.instance.pki_dir / "ca.crt", target / "ca.crt")
        (target / "namespace").write_text(self.ns)

    def write_volumes(self) -> dict[str, Path]:
        """Materialise every volume; returns name -> host path."""
        vols_dir = self.pod_dir / "volumes"
        vols_dir.mkdir(parents=True, exist_ok=True)
        containers = {c["name"]: c for c in self._all_containers()}
        out: dict[str, Path] = {}
        for vol in self.pod["spec"].get("volumes") or []:
            name = vol["name"]
            target = vols_dir / name
            mode = None
            if "hostPath" in vol:
                out[name] = Path(vol["hostPath"]["path"])
                continue
            if "persistentVolumeClaim" in vol:
                # a claim's data lives per namespace and claim, across its pods
                claim = vol["persistentVolumeClaim"]["claimName"]
                out[name] = self.instance.state_dir / "claims" / self.ns / claim
                out[name].mkdir(parents=True, exist_ok=True)
                continue
            target.mkdir(parents=True, exist_ok=True)
            if "emptyDir" in vol:
                target.chmod(0o777)  # as a real kubelet: writable by any container user
            elif "configMap" in vol:
                src = vol["configMap"]
                data = self._config_map(src["name"], bool(src.get("optional")))
                self._write_items(target, data or {}, src.get("items"), src.get("defaultMode"))
            elif "secret" in vol:
                src = vol["secret"]
                data = self._secret(src["secretName"], bool(src.get("optional")))
                self._write_items(target, data or {}, src.get("items"),
                                  src.get("defaultMode", 0o644))
            elif "downwardAPI" in vol:
                self._downward_items(target, vol["downwardAPI"].get("items") or [], containers)
            elif "projected" in vol:
                mode = vol["projected"].get("defaultMode")
                for source in vol["projected"].get("sources") or []:
                    if "configMap" in source:
                        s = source["configMap"]
                        data = self._config_map(s["name"], bool(s.get("optional")))
                        self._write_items(target, data or {}, s.get("items"), mode)
                    elif "secret" in source:
                        s = source["secret"]
                        data = self._secret(s["name"], bool(s.get("optional")))
                        self._write_items(target, data or {}, s.get("items"), mode)
                    elif "downwardAPI" in source:
                        self._downward_items(target, source["downwardAPI"].get("items") or [],
                                             containers)
                    elif "serviceAccountToken" in source:
                        s = source["serviceAccountToken"]
                        path = target / s["path"]
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.write_bytes(self._token(s.get("audience"),
                                                     s.get("expirationSeconds")))
            else:
                kinds = sorted(set(vol) - {"name"})
                raise PodSetupError(f"volume {name}: unsupported type {kinds}: use emptyDir, "
                                    "configMap, secret, downwardAPI, projected, hostPath or "
                                    "persistentVolumeClaim")
            out[name] = target
        if self._automount():
            self._sa_files(vols_dir / "kube-api-access-sandbox")
            out["kube-api-access-sandbox"] = vols_dir / "kube-api-access-sandbox"
        return out

    def _all_containers(self) -> list[Obj]:
        spec = self.pod["spec"]
        return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]

    def _automount(self) -> bool:
        """Mount our own token volume unless the pod opts out or mounts one itself."""
        if self.pod["spec"].get("automountServiceAccountToken") is False:
            return False
        return not any(m.get("mountPath", "").rstrip("/") == SA_DIR
                       for c in self._all_containers() for m in c.get("volumeMounts") or [])

    # -- environment -------------------------------------------------------------------
    def service_env(self) -> dict[str, str]:
        """KUBERNETES_* and, with enableServiceLinks, the docker-link variables."""
        s = get_settings().sandbox
        env = {"KUBERNETES_SERVICE_HOST": str(_nth_ip(s.service_cidr, 1)),
               "KUBERNETES_SERVICE_PORT": "443", "KUBERNETES_SERVICE_PORT_HTTPS": "443",
               "KUBERNETES_PORT": f"tcp://{_nth_ip(s.service_cidr, 1)}:443"}
        if self.pod["spec"].get("enableServiceLinks") is False:
            return env
        for svc in self.api.list_services(self.ns):
            ip = svc["spec"].get("clusterIP")
            if not ip or ip == "None":
                continue
            prefix = svc["metadata"]["name"].upper().replace("-", "_")
            ports = svc["spec"].get("ports") or []
            if not ports:
                continue
            env[f"{prefix}_SERVICE_HOST"] = ip
            env[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
            for p in ports:
                proto = p.get("protocol", "TCP")
                if p.get("name"):
                    env[f"{prefix}_SERVICE_PORT_{p['name'].upper().replace('-', '_')}"] = \
                        str(p["port"])
                base = f"{prefix}_PORT_{p['port']}_{proto}"
                env[base] = f"{proto.lower()}://{ip}:{p['port']}"
                env[f"{base}_PROTO"] = proto.lower()
                env[f"{base}_PORT"] = str(p["port"])
                env[f"{base}_ADDR"] = ip
            env[f"{prefix}_PORT"] = f"{ports[0].get('protocol', 'TCP').lower()}://{ip}:" \
                                    f"{ports[0]['port']}"
        return env

    def container_env(self, container: Obj, base: dict[str, str]) -> dict[str, str]:
        """The container's environment, in Kubernetes' order, with $(VAR) expansion."""
        name = self.pod["spec"].get("hostname") or self.pod["metadata"]["name"]
        path = os.path.dirname(sys.executable) + ":" + DEFAULT_PATH
        entry = images.lookup(str(container.get("image", "")))
        if entry is not None and entry.applets and (applets := images.applets_dir()):
            path += f":{applets}"
        env: dict[str, str] = {"PATH": path, "HOSTNAME": name, "HOME": "/root"}
        env.update(base)
        for src in container.get("envFrom") or []:
            prefix = src.get("prefix", "")
            if "configMapRef" in src:
                ref = src["configMapRef"]
                data = self._config_map(ref["name"], bool(ref.get("optional"))) or {}
            else:
                ref = src["secretRef"]
                data = self._secret(ref["name"], bool(ref.get("optional"))) or {}
            env.update({prefix + k: v.decode(errors="replace") for k, v in data.items()})
        for var in container.get("env") or []:
            value: str | None
            if "valueFrom" not in var:
                value = expand(var.get("value", ""), env)
            else:
                vf = var["valueFrom"]
                if "fieldRef" in vf:
                    value = field_ref(self.pod, vf["fieldRef"]["fieldPath"], self.pod_ip,
                                      self.host_ip)
                elif "resourceFieldRef" in vf:
                    value = resource_ref(container, vf["resourceFieldRef"])
                elif "configMapKeyRef" in vf:
                    r = vf["configMapKeyRef"]
                    value = self._key(self._config_map(r["name"], bool(r.get("optional"))),
                                      "configmap", r["name"], r["key"], bool(r.get("optional")))
                elif "secretKeyRef" in vf:
                    r = vf["secretKeyRef"]
                    value = self._key(self._secret(r["name"], bool(r.get("optional"))),
                                      "secret", r["name"], r["key"], bool(r.get("optional")))
                else:
                    raise PodSetupError(f"env {var['name']}: unsupported valueFrom {sorted(vf)}")
            if value is not None:
                env[var["name"]] = value
        return env

    def container_mounts(self, container: Obj, volumes: dict[str, Path], etc: Path
                         ) -> list[Mount]:
        mounts = [Mount(str(etc / "resolv.conf"), "/etc/resolv.conf", is_file=True),
                  Mount(str(etc / "hosts"), "/etc/hosts", is_file=True)]
        for vm in container.get("volumeMounts") or []:
            if vm["name"] not in volumes:
                raise PodSetupError(f"container {container['name']}: volumeMount "
                                    f"{vm['name']!r} names no volume of the pod")
            source = volumes[vm["name"]]
            if vm.get("subPath"):
                source = source / vm["subPath"]
                if not source.exists():
                    source.mkdir(parents=True)
            mounts.append(Mount(str(source), vm["mountPath"], bool(vm.get("readOnly")),
                                is_file=source.is_file()))
        if "kube-api-access-sandbox" in volumes:
            mounts.append(Mount(str(volumes["kube-api-access-sandbox"]), SA_DIR, True))
        return mounts

    def build(self) -> PodFiles:
        etc = self.write_etc()
        volumes = self.write_volumes()
        base = self.service_env()
        files = PodFiles()
        for c in self._all_containers():
            files.env[c["name"]] = self.container_env(c, base)
            files.mounts[c["name"]] = self.container_mounts(c, volumes, etc)
        return files

    def refresh_config_volumes(self) -> int:
        """Bring configMap and secret volumes up to date with the API, as a kubelet's
        periodic volume sync does (files rewritten in place: a rename would leave the
        bind mounts on the old inodes). Returns how many files changed."""
        self._cms.clear()
        self._secrets.clear()
        changed = 0
        for vol in self.pod["spec"].get("volumes") or []:
            target = self.pod_dir / "volumes" / vol["name"]
            if "configMap" in vol:
                src = vol["configMap"]
                data = self._config_map(src["name"], True) or {}
                mode = src.get("defaultMode")
            elif "secret" in vol:
                src = vol["secret"]
                data = self._secret(src["secretName"], True) or {}
                mode = src.get("defaultMode", 0o644)
            else:
                continue
            if not target.is_dir():
                continue
            chosen = ([(i["key"], i["path"], i.get("mode")) for i in src["items"]]
                      if src.get("items") else [(k, k, None) for k in data])
            for key, rel, item_mode in chosen:
                path = target / rel
                if key not in data or (path.exists() and path.read_bytes() == data[key]):
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data[key])
                path.chmod(item_mode if item_mode is not None else (mode if mode is not None
                                                                     else 0o644))
                changed += 1
            if not src.get("items"):  # keys removed from the object go from the volume
                for path in target.iterdir():
                    if path.is_file() and path.name not in data:
                        path.unlink()
                        changed += 1
        return changed

    def refresh_token(self) -> None:
        """Renew the automounted token file in place (the mount sees the new content)."""
        target = self.pod_dir / "volumes" / "kube-api-access-sandbox" / "token"
        if target.exists():
            tmp = target.with_suffix(".new")
            tmp.write_bytes(self._token())
            # Rewrite in place: a rename would leave bind-mounted files on the old inode.
            target.write_bytes(tmp.read_bytes())
            tmp.unlink()


def _nth_ip(cidr: str, n: int) -> Any:
    import ipaddress
    return ipaddress.ip_network(cidr)[n]
