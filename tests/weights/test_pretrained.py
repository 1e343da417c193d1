"""weights="imagenet" offline: checkpoints the tests write, served by a loopback HTTP server
that counts the requests; the Keras cache lives in tmp_path (KERAS_HOME)."""

import hashlib
import http.server
import pathlib
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pytest

import keras_drn
from keras_drn.weights import pretrained
from tests.helpers import random_input, to_numpy

torch = pytest.importorskip("torch")
from tests.weights.torch_reference import reference_net, run_torch, save  # noqa: E402


@dataclass
class Server:
    url: str
    files: dict = field(default_factory=dict)  # "/name" -> (body, announced Content-Length)
    requests: list = field(default_factory=list)
    seconds_per_file: float = 0.0  # spread each body over this long, in 20 chunks

    def serve(self, name, body, announced=None):
        self.files[f"/{name}"] = (body, len(body) if announced is None else announced)


@pytest.fixture
def server():
    """http://127.0.0.1:<port>/ serving ``Server.files`` (404 otherwise), in a thread."""
    state = Server(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            state.requests.append(self.path)
            if self.path not in state.files:
                self.send_error(404)
                return
            body, announced = state.files[self.path]
            self.send_response(200)
            self.send_header("Content-Length", str(announced))
            self.end_headers()
            chunk = -(-len(body) // 20)
            for start in range(0, len(body), chunk):  # HTTP/1.0: closes after the body
                self.wfile.write(body[start : start + chunk])
                self.wfile.flush()
                time.sleep(state.seconds_per_file / 20)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def checkpoint(tmp_path, monkeypatch):
    """A random DRN-D-22 reference checkpoint, put in the table under a name carrying its real
    SHA-256 prefix; the official base URL is unreachable and KERAS_HOME is in tmp_path."""
    net = reference_net("drn_d_22")
    data = pathlib.Path(save(net.state_dict(), tmp_path / "staging.pth")).read_bytes()
    name = f"drn_d_22-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    monkeypatch.setitem(pretrained.CHECKPOINTS, "drn_d_22",
                        pretrained.Checkpoint(name, "http://unreachable.invalid/"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.delenv(pretrained.MIRROR_ENV, raising=False)
    return net, name, data


def _cached():
    return sorted(p.name for p in pathlib.Path(pretrained.cache_dir()).iterdir())


def test_download_checks_converts_and_caches(server, checkpoint, monkeypatch, capsys):
    net, name, data = checkpoint
    server.serve(name, data)
    monkeypatch.setenv(pretrained.MIRROR_ENV, server.url)
    x = random_input((1, 40, 49, 3))
    for _ in range(2):  # the second call uses the cache: no request, no conversion
        model = keras_drn.DRN_D_22(weights="imagenet", classifier_activation=None)
        np.testing.assert_allclose(to_numpy(model(x, training=False)), run_torch(net, x),
                                   atol=1e-4)
        assert server.requests == [f"/{name}"]
    assert _cached() == sorted([name, "drn_d_22_imagenet.weights.h5"])
    backbone = keras_drn.DRN_D_22(weights="imagenet", include_top=False)
    assert "backbone" in capsys.readouterr().out
    np.testing.assert_allclose(to_numpy(backbone(x, training=False)),
                               run_torch(net, x, "features"), atol=1e-4)
    assert keras_drn.DRN_D_22(weights="imagenet", classes=5).output_shape == (None, 5)
    assert len(server.requests) == 1


def test_base_url_argument_overrides_the_mirror_variable(server, checkpoint, monkeypatch):
    _, name, data = checkpoint
    server.serve(name, data)
    monkeypatch.setenv(pretrained.MIRROR_ENV, "http://unreachable.invalid/mirror/")
    assert pretrained.checkpoint_url("drn_d_22") == f"http://unreachable.invalid/mirror/{name}"
    path = pretrained.imagenet_weights("drn_d_22", base_url=server.url.rstrip("/"))
    assert path.endswith("drn_d_22_imagenet.weights.h5")
    assert server.requests == [f"/{name}"]


@pytest.mark.parametrize("corruption", ["one_bit", "short_file"])
def test_a_wrong_hash_is_refused_and_deleted(server, checkpoint, monkeypatch, corruption):
    _, name, data = checkpoint
    bad = data[:-1] + bytes([data[-1] ^ 1]) if corruption == "one_bit" else data[:1000]
    server.serve(name, bad)
    monkeypatch.setenv(pretrained.MIRROR_ENV, server.url)
    actual = hashlib.sha256(bad).hexdigest()
    with pytest.raises(ValueError, match=f"{server.url}{name} has SHA-256 {actual}, which does "
                                         f"not start with {name[9:17]}.*deleted"):
        keras_drn.DRN_D_22(weights="imagenet")
    assert _cached() == []


@pytest.mark.parametrize("failure", ["cut_transfer", "not_found"])
def test_a_failed_download_names_the_url_and_leaves_nothing(server, checkpoint, monkeypatch,
                                                            failure):
    _, name, data = checkpoint
    if failure == "cut_transfer":  # announces the full size, sends half, closes
        server.serve(name, data[: len(data) // 2], announced=len(data))
    monkeypatch.setenv(pretrained.MIRROR_ENV, server.url)
    with pytest.raises(OSError, match=f"from {server.url}{name} .*{pretrained.MIRROR_ENV}"):
        keras_drn.DRN_D_22(weights="imagenet")
    assert _cached() == []


_DOWNLOAD = """
from keras_drn.weights import pretrained
pretrained.CHECKPOINTS["drn_d_22"] = pretrained.Checkpoint({name!r}, {url!r})
print(pretrained.download_checkpoint("drn_d_22"))
"""


def test_concurrent_processes_never_see_a_partial_file(server, checkpoint):
    """Two processes download the same checkpoint at once from a slow server; meanwhile the
    checkpoint's name in the cache is either absent or the whole, checked file."""
    _, name, data = checkpoint
    server.serve(name, data)
    server.seconds_per_file = 4.0
    script = _DOWNLOAD.format(name=name, url=server.url)
    root = pathlib.Path(__file__).parents[2]
    processes = [subprocess.Popen([sys.executable, "-c", script], cwd=root, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for _ in range(2)]
    final = pathlib.Path(pretrained.cache_dir()) / name
    expected = hashlib.sha256(data).hexdigest()
    seen, saw_partial = set(), False
    while any(process.poll() is None for process in processes):
        if final.parent.is_dir():
            saw_partial |= any(p.name.endswith(".part") for p in final.parent.iterdir())
        if final.exists():
            seen.add(hashlib.sha256(final.read_bytes()).hexdigest())
        time.sleep(0.05)
    for process in processes:
        out, err = process.communicate()
        assert process.returncode == 0, err
        assert out.strip().splitlines()[-1] == str(final)
    assert saw_partial  # the downloads were watched while in progress
    assert seen <= {expected}
    assert hashlib.sha256(final.read_bytes()).hexdigest() == expected
    assert _cached() == [name]  # no temporary file left behind


def test_variants_without_official_weights_list_those_with():
    with pytest.raises(ValueError, match=r"no official ImageNet checkpoint for 'drn_d_24'; "
                                         r"variants with one: \['drn_a_50', 'drn_c_26'"):
        keras_drn.DRN_D_24(weights="imagenet")


def test_only_http_urls(checkpoint):
    with pytest.raises(ValueError, match="http.*file:///etc/"):
        pretrained.download_checkpoint("drn_d_22", base_url="file:///etc/")


def test_table_matches_the_official_files(monkeypatch):
    monkeypatch.delenv(pretrained.MIRROR_ENV, raising=False)
    expected = {
        "drn_a_50": "https://download.pytorch.org/models/resnet50-19c8e357.pth",
        "drn_c_26": "http://dl.yf.io/drn/drn_c_26-ddedf421.pth",
        "drn_c_42": "http://dl.yf.io/drn/drn_c_42-9d336e8c.pth",
        "drn_c_58": "http://dl.yf.io/drn/drn_c_58-0a53a92c.pth",
        "drn_d_22": "http://dl.yf.io/drn/drn_d_22-4bd2f8ea.pth",
        "drn_d_38": "http://dl.yf.io/drn/drn_d_38-eebb45f0.pth",
        "drn_d_54": "http://dl.yf.io/drn/drn_d_54-0e0534ff.pth",
        "drn_d_105": "http://dl.yf.io/drn/drn_d_105-12b40979.pth",
    }
    assert {v: pretrained.checkpoint_url(v) for v in pretrained.CHECKPOINTS} == expected
    assert pretrained.CHECKPOINTS["drn_c_26"].sha256_prefix == "ddedf421"
