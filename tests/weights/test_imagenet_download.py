"""weights="imagenet" offline: checkpoints the tests write, served from a loopback server."""

import functools
import hashlib
import http.server
import pathlib
import threading

import numpy as np
import pytest

import keras_drn
from keras_drn.models.drn import VARIANTS
from keras_drn.weights import pretrained
from tests.helpers import random_input, to_numpy

torch = pytest.importorskip("torch")
from tests.weights.torch_reference import Net, randomize  # noqa: E402


@pytest.fixture
def server(tmp_path):
    """Serves tmp_path/served over http://127.0.0.1:<port>/ and counts the requests."""
    root = tmp_path / "served"
    root.mkdir()
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/", requests
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def checkpoint(tmp_path, monkeypatch):
    """A DRN-D-22 state_dict whose table entry carries its real hash prefix."""
    spec = VARIANTS["drn_d_22"]
    net = randomize(Net(spec.arch, False, spec.depths))
    staging = tmp_path / "staging.pth"
    torch.save(net.state_dict(), staging)
    data = staging.read_bytes()
    name = f"drn_d_22-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    monkeypatch.setitem(pretrained.CHECKPOINTS, "drn_d_22",
                        pretrained.Checkpoint(name, "http://unreachable.invalid/"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    return net, name, data


def test_download_checks_converts_and_caches(server, checkpoint, monkeypatch, capsys):
    root, url, requests = server
    net, name, data = checkpoint
    (root / name).write_bytes(data)
    monkeypatch.setenv(pretrained.MIRROR_ENV, url)
    model = keras_drn.DRN_D_22(weights="imagenet", classifier_activation=None)
    x = random_input((1, 40, 48, 3))
    with torch.no_grad():
        ref = net(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(to_numpy(model(x, training=False)), ref, atol=1e-4)
    cache = pretrained.cache_dir()
    assert sorted(p.name for p in pathlib.Path(cache).iterdir()) == sorted(
        [name, "drn_d_22_imagenet.weights.h5"])
    assert requests == [f"/{name}"]
    again = keras_drn.DRN_D_22(weights="imagenet", classifier_activation=None)
    np.testing.assert_allclose(to_numpy(again(x, training=False)), ref, atol=1e-4)
    assert len(requests) == 1  # the second call used the cache: no network, no conversion
    backbone = keras_drn.DRN_D_22(weights="imagenet", include_top=False)
    assert "backbone" in capsys.readouterr().out
    assert backbone.output_shape == (None, None, None, 512)
    five = keras_drn.DRN_D_22(weights="imagenet", classes=5)
    assert five.output_shape == (None, 5)


def test_base_url_argument_overrides(server, checkpoint):
    root, url, requests = server
    _, name, data = checkpoint
    (root / name).write_bytes(data)
    path = pretrained.download_checkpoint("drn_d_22", base_url=url)
    assert path.endswith(name) and requests == [f"/{name}"]


@pytest.mark.parametrize("corruption", ["wrong", "truncated"])
def test_bad_downloads_leave_nothing_in_the_cache(server, checkpoint, monkeypatch, corruption):
    root, url, _ = server
    _, name, data = checkpoint
    bad = data[:-1] + bytes([data[-1] ^ 1]) if corruption == "wrong" else data[: len(data) // 2]
    (root / name).write_bytes(bad)
    monkeypatch.setenv(pretrained.MIRROR_ENV, url)
    with pytest.raises(ValueError, match=f"does not start with {name[9:17]}.*deleted"):
        keras_drn.DRN_D_22(weights="imagenet")
    assert list(pathlib.Path(pretrained.cache_dir()).iterdir()) == []


def test_variants_without_official_weights():
    with pytest.raises(ValueError, match=r"no official ImageNet checkpoint for 'drn_d_24'.*"
                                         r"'drn_c_26'"):
        keras_drn.DRN_D_24(weights="imagenet")


def test_only_http_urls(checkpoint):
    with pytest.raises(ValueError, match="http"):
        pretrained.download_checkpoint("drn_d_22", base_url="file:///etc/")


def test_table_matches_the_official_files():
    assert sorted(pretrained.CHECKPOINTS) == [
        "drn_a_50", "drn_c_26", "drn_c_42", "drn_c_58", "drn_d_105", "drn_d_22", "drn_d_38",
        "drn_d_54"]
    assert pretrained.CHECKPOINTS["drn_c_26"].sha256_prefix == "ddedf421"
    assert pretrained.CHECKPOINTS["drn_a_50"].file_name == "resnet50-19c8e357.pth"
