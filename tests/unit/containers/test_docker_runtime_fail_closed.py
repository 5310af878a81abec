"""The container runtime keeps to "no registry, local material only, fail closed": the Docker runtime, the image builds
and the engine link. Each test failed on the code before its fix.

The engine is a real ``docker.DockerClient`` whose HTTP calls are answered here (:class:`Engine`): the SDK's
own models (``containers.run`` and its implicit pull among them) run as they do against a daemon."""
from __future__ import annotations

import os
import subprocess

import pytest
import yaml

docker = pytest.importorskip("docker")

from ipledger.network import consortium  # noqa: E402
from ipledger.network.errors import NetworkError  # noqa: E402
from ipledger.network.layout import Layout  # noqa: E402
from ipledger.network.org import processes  # noqa: E402
from ipledger.network.org.containers import compose, images, runtime, services  # noqa: E402
from ipledger.network.org.containers.images import ImageError  # noqa: E402
from ipledger.network.org.containers.runtime import ContainerError, DockerRuntime  # noqa: E402
from ipledger.network.org.containers.services import Mount, Service  # noqa: E402

IMAGE = "ipledger/peer:3.1.5-000000000000"


class Engine:
    """The daemon behind a real SDK client: containers, volumes and images in dictionaries; every call
    recorded. A call not answered here would go to a socket that does not exist (and fail)."""

    def __init__(self, have=(IMAGE,), start_fails=False, exit_code=0):
        self.client = docker.DockerClient(base_url="unix:///nonexistent/ipledger-review.sock", version="1.41")
        self.images, self.containers, self.volumes = set(have), {}, {}
        self.pulls, self.start_fails, self.exit_code = [], start_fails, exit_code
        api = self.client.api
        for name in ("create_container", "inspect_container", "start", "remove_container", "stop",
                     "inspect_volume", "create_volume", "pull", "wait", "logs"):
            setattr(api, name, getattr(self, name))

    def _by(self, ident):
        for name, attrs in self.containers.items():
            if ident in (name, attrs["Id"]):
                return name, attrs
        raise docker.errors.NotFound(f"No such container: {ident}")

    def create_container(self, image, command=None, name=None, host_config=None, labels=None, environment=None,
                         user=None, **_):
        if image not in self.images:
            raise docker.errors.ImageNotFound(f"No such image: {image}")
        cid = f"{len(self.containers) + 1:064x}"
        host_config = dict(host_config or {}, LogConfig=(host_config or {}).get("LogConfig") or {"Type": "json-file"})
        self.containers[name] = {"Id": cid, "Name": f"/{name}", "State": {"Status": "created"},
                                 "Config": {"Image": image, "Cmd": command, "Env": environment, "Labels": labels,
                                            "User": user},
                                 "HostConfig": host_config}
        return {"Id": cid}

    def inspect_container(self, ident):
        return self._by(ident)[1]

    def start(self, ident, *_, **__):
        _, attrs = self._by(ident)
        if self.start_fails:
            raise docker.errors.APIError("cannot start: bind source path does not exist")
        attrs["State"]["Status"] = "running"

    def stop(self, ident, timeout=None):
        self._by(ident)[1]["State"]["Status"] = "exited"

    def remove_container(self, ident, v=False, link=False, force=False):
        del self.containers[self._by(ident)[0]]

    def wait(self, ident, timeout=None, condition=None):
        self._by(ident)[1]["State"]["Status"] = "exited"
        return {"StatusCode": self.exit_code}

    def logs(self, ident, *_, stream=False, **__):
        out = b"chown: changing ownership: Operation not permitted\n"
        return iter([out]) if stream else out

    def inspect_volume(self, name):
        if name not in self.volumes:
            raise docker.errors.NotFound(f"no such volume: {name}")
        return self.volumes[name]

    def create_volume(self, name=None, driver=None, driver_opts=None, labels=None):
        self.volumes[name] = {"Name": name, "Labels": labels}
        return self.volumes[name]

    def pull(self, repository, tag=None, *_, **__):
        self.pulls.append(f"{repository}:{tag}" if tag else repository)
        raise docker.errors.APIError("registry unreachable")


def a_service(tmp_path, image=IMAGE, user=None, volume=False) -> Service:
    keys = tmp_path / "node"
    keys.mkdir(exist_ok=True)
    mounts = [Mount(str(keys), str(keys))]
    if volume:
        mounts.append(Mount(str(tmp_path / "data"), "ipledger-review-peer0.customs", read_only=False, volume=True))
    return Service("ipledger-review-peer0.customs", image, "peer", "CustomsMSP", ["peer", "node", "start"],
                   mounts=mounts, node="peer0.customs", scope="review", user=user)


# ----------------------------------------------------------------------------- no registry, ever

def test_a_missing_image_is_an_error_not_a_pull_from_a_registry(tmp_path):
    """The SDK's containers.run pulls an image it does not find (docker.io/ipledger/...: a name anyone may
    hold there) and then mounts the organisation's keys into it."""
    engine = Engine(have=())
    rt = DockerRuntime(Layout(tmp_path / "state"), client=engine.client)
    with pytest.raises(ContainerError, match=f"{IMAGE}.*not in the engine.*build"):
        rt.run(a_service(tmp_path))
    assert engine.pulls == [] and engine.containers == {}


def test_the_volume_owner_is_not_pulled_either(tmp_path, monkeypatch):
    engine = Engine(have=(IMAGE,))
    monkeypatch.setitem(runtime._built, engine.client.api.base_url, {"peer": "ipledger/peer:absent"})
    rt = DockerRuntime(Layout(tmp_path / "state"), client=engine.client)
    with pytest.raises(ContainerError, match="ipledger/peer:absent.*not in the engine"):
        rt.run(a_service(tmp_path, user="1234:99", volume=True))
    assert engine.pulls == []


def test_a_container_that_cannot_start_is_not_left_behind(tmp_path):
    engine = Engine(start_fails=True)
    rt = DockerRuntime(Layout(tmp_path / "state"), client=engine.client)
    with pytest.raises(ContainerError, match="cannot start"):
        rt.run(a_service(tmp_path))
    assert engine.containers == {}


def test_a_failing_volume_owner_is_removed_and_its_error_shown(tmp_path, monkeypatch):
    engine = Engine(exit_code=1)
    monkeypatch.setitem(runtime._built, engine.client.api.base_url, {"peer": IMAGE})
    rt = DockerRuntime(Layout(tmp_path / "state"), client=engine.client)
    with pytest.raises(ContainerError, match="volume-owner failed.*Operation not permitted"):
        rt.run(a_service(tmp_path, user="1234:99", volume=True))
    assert engine.containers == {} and engine.pulls == []
    # and one that succeeds: removed, then the node's container started with its settings
    engine.exit_code = 0
    rt.run(a_service(tmp_path, user="1234:99", volume=True))
    [(name, attrs)] = engine.containers.items()
    assert name == "ipledger-review-peer0.customs" and attrs["State"]["Status"] == "running"
    host = attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["NetworkMode"] == "host" and attrs["Config"]["User"] == "1234:99"


# ----------------------------------------------------------------------------- the engine's errors

def test_an_image_that_cannot_be_built_is_a_start_error_the_cli_reports(tmp_path, monkeypatch):
    """``network up --runtime docker`` builds the images first: an ImageError (no debootstrap, no Fabric
    binaries) was no StartError, so the CLI printed a traceback."""
    def no_debootstrap(**_):
        raise ImageError("debootstrap is not installed (apt-get install -y debootstrap)")
    engine = Engine()
    monkeypatch.setattr(images, "build_all", no_debootstrap)
    monkeypatch.delitem(runtime._built, engine.client.api.base_url, raising=False)
    rt = DockerRuntime(Layout(tmp_path / "state"), client=engine.client)
    with pytest.raises(processes.StartError, match="debootstrap is not installed"):
        rt.tags(log=lambda *_: None)


def test_an_engine_gone_after_the_client_was_made_is_a_clear_error(tmp_path):
    """The SDK raises requests' ConnectionError (no DockerException) when the daemon stops answering."""
    gone = docker.DockerClient(base_url="unix:///nonexistent/ipledger-review.sock", version="1.41")
    rt = DockerRuntime(Layout(tmp_path / "state"), client=gone)
    with pytest.raises(ContainerError, match="looking for container ipledger-review-peer0.customs"):
        rt.running_id("ipledger-review-peer0.customs")
    with pytest.raises(ContainerError, match="listing containers"):
        rt.containers()


def test_a_plaintext_tcp_engine_is_refused(monkeypatch):
    """DOCKER_HOST=tcp://... without DOCKER_TLS_VERIFY: an unauthenticated, unencrypted link to what mounts
    the organisation's keys."""
    class Answers:
        def ping(self):
            return True
    monkeypatch.setattr(docker, "from_env", lambda **_: Answers())
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    with pytest.raises(ImageError, match="DOCKER_TLS_VERIFY"):
        images.client()
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    assert isinstance(images.client(), Answers)
    monkeypatch.delenv("DOCKER_TLS_VERIFY")
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/docker.sock")
    assert isinstance(images.client(), Answers)


# ----------------------------------------------------------------------------- building from local material

def test_image_builds_run_without_a_network(monkeypatch):
    """RUN steps need none (pip --no-index, venv, compileall); given the engine's default bridge they could
    reach an index, and on an engine not set up by scripts/ that bridge is outside 198.18.0.0/15."""
    seen = {}

    class Api:
        def build(self, **kw):
            seen.update(kw)
            return iter([{"stream": "Step 1/1 : FROM scratch\n"}])

    class C:
        api = Api()

    monkeypatch.setattr(images, "tag_exists", lambda c, t: True)
    spec = images.ImageSpec("peer", "FROM @BASE@\n", parent=images.SCRATCH, inputs=[images.Input("a", data=b"1")])
    [step] = images.plan([spec])
    images.build_dockerfile(step, C(), log=lambda *_: None)
    assert seen["network_mode"] == "none" and seen["pull"] is False
    assert seen["use_config_proxy"] is False       # no proxy settings (credentials) of ~/.docker passed in


def test_debootstrap_refuses_an_unverified_archive(monkeypatch, tmp_path):
    """Without a keyring debootstrap warns and goes on unverified (over http://): --force-check-gpg fails."""
    ran = []

    def fake_run(cmd, **_):
        ran.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "E: Keyring-based check was requested; aborting")
    monkeypatch.setattr(images.os, "geteuid", lambda: 0)
    monkeypatch.setattr(images.shutil, "which", lambda name: "/usr/sbin/debootstrap")
    monkeypatch.setattr(images.subprocess, "run", fake_run)
    monkeypatch.setenv("IPLEDGER_CONTAINERS_CACHE", str(tmp_path))
    [step] = images.plan([images.ImageSpec("base", images.base_recipe(), kind="rootfs", version="bookworm")])
    with pytest.raises(ImageError, match="debootstrap failed"):
        images.build_rootfs(step, object(), log=lambda *_: None, mirror="http://deb.debian.org/debian")
    assert "--force-check-gpg" in ran[0]


# ----------------------------------------------------------------------------- names and scripts

def test_the_volume_owners_script_quotes_the_paths(tmp_path):
    """A state directory with a space (or a shell character) in its path: the root container's script."""
    target = tmp_path / "my state $(touch pwned)" / "data"
    target.mkdir(parents=True)
    svc = Service("n", "i", "peer", "CustomsMSP", ["peer"], mounts=[Mount(str(target), "vol", False, True)],
                  user=f"{os.getuid()}:{os.getgid()}")
    owner = services.volume_owner(svc, "sh-image")
    proc = subprocess.run(owner.command, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "pwned").exists()


def test_a_node_whose_container_would_be_the_gateways_is_refused(tmp_path):
    """A peer named 'gateway' is container ipledger-<scope>-gateway.customs, the name of customs' gateway:
    'gateway start' answered with the peer's container, 'gateway stop' stopped the peer."""
    raw = yaml.safe_load(consortium.DEFAULT_FILE.read_text())
    raw["organisations"][0]["peers"] = [{"name": "gateway"}]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    c = consortium.load(path, base_port=21000)
    with pytest.raises(NetworkError, match="gateway.customs.*gateway"):
        services.check_host_ports(c, c.nodes)
    with pytest.raises(NetworkError, match="gateway.customs"):
        compose.org_services(Layout(tmp_path / "state"), c.org("CustomsMSP"), {}, gateway_bind="127.0.0.1:8080")
    raw = yaml.safe_load(consortium.DEFAULT_FILE.read_text())
    raw["organisations"].append({"msp_id": "OwnerMSP", "name": "customs-volume-owner", "peers": [{"name": "peer0"}]})
    path.write_text(yaml.safe_dump(raw))
    c = consortium.load(path, base_port=21000)
    with pytest.raises(NetworkError, match="peer0.customs-volume-owner.*volume owner of peer0.customs"):
        services.check_host_ports(c, c.nodes)
    ok = consortium.load(base_port=21000)
    services.check_host_ports(ok, ok.nodes)


# ----------------------------------------------------------------------------- partial starts

def test_a_chaincode_service_that_never_listens_is_removed(tmp_path, monkeypatch):
    engine = Engine(have=("ipledger/ccaas:t",))
    monkeypatch.setitem(runtime._built, engine.client.api.base_url, {"ccaas": "ipledger/ccaas:t"})
    monkeypatch.setattr(runtime, "_accepts", lambda host, port: False)
    c = consortium.load(base_port=21000)
    tls = tmp_path / "chaincode"
    tls.mkdir()
    rt = DockerRuntime(Layout(tmp_path / "state"), client=engine.client)
    with pytest.raises(ContainerError, match="does not listen"):
        rt.start_chaincode(c.org("OperatorMSP"), "ipledger_1.0", "ipledger_1.0:abc", "127.0.0.1:21013",
                           "CustomsMSP", tls, log=lambda *_: None, timeout=0.3)
    assert engine.containers == {}
