"""weights="imagenet" offline: weights files the tests write (both sources: imgclsmob's zip in
pytorchcv's layout, the official plain .pth in the reference's), put in the table with their
real hashes and served by a loopback HTTP server that counts the requests; the Keras cache
lives in tmp_path (KERAS_HOME)."""

import hashlib
import http.server
import io
import os
import pathlib
import socket
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import dataclass, field

import numpy as np
import pytest

import keras_drn
from keras_drn.cli import app as cli
from keras_drn.models.drn import checkpoint_names
from keras_drn.weights import archive, pretrained, sources
from keras_drn.weights.layouts import pytorchcv_modules
from tests.cli.helpers import refused
from tests.helpers import random_input, to_numpy

torch = pytest.importorskip("torch")
from tests.weights.torch_reference import reference_net, run_torch, save  # noqa: E402

UNRESOLVABLE = "weights-host.invalid"  # its DNS lookup fails (socket.getaddrinfo is patched)


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
            chunk = max(1, -(-len(body) // 20))
            for start in range(0, len(body), chunk):  # HTTP/1.0: closes after the body
                try:
                    self.wfile.write(body[start : start + chunk])
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client gave up (a deadline, a size refusal): as it should
                time.sleep(state.seconds_per_file / 20)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _zip(member, data, extra=(), compression=zipfile.ZIP_STORED):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as zipped:
        zipped.writestr(member, data)
        for name, body in extra:
            zipped.writestr(name, body)
    return buffer.getvalue()


def _pytorchcv_state(net):
    """The reference net's state_dict under pytorchcv's keys (what imgclsmob publishes)."""
    inverse = {v: k for k, v in pytorchcv_modules(checkpoint_names("drn_d_22")).items()}
    renamed = {}
    for key, value in net.state_dict().items():
        module, _, param = key.rpartition(".")
        renamed[f"{inverse[module]}.{param}"] = value
    return renamed


@dataclass
class Files:
    net: object
    zipped: sources.WeightsFile  # the imgclsmob row (a .pth.zip, pytorchcv layout)
    plain: sources.WeightsFile  # the official row (a .pth, reference layout)
    zip_bytes: bytes
    pth_bytes: bytes  # the imgclsmob .pth inside the zip
    official_bytes: bytes


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A random DRN-D-22 and its two files (built once: torch.save of 16M parameters)."""
    folder = tmp_path_factory.mktemp("made")
    net = reference_net("drn_d_22")
    pth = pathlib.Path(save(_pytorchcv_state(net), folder / "cv.pth")).read_bytes()
    official = pathlib.Path(save(net.state_dict(), folder / "ref.pth")).read_bytes()
    sha1 = hashlib.sha1(pth).hexdigest()
    member = f"drnd22-0758-{sha1[:8]}.pth"  # deflated, as imgclsmob's release assets are
    return net, pth, official, sha1, _zip(member, pth, compression=zipfile.ZIP_DEFLATED)


@pytest.fixture
def files(made, tmp_path, monkeypatch):
    """DRN-D-22 rows for both sources with the test files' real hashes and unresolvable
    official hosts; no mirror set; KERAS_HOME in tmp_path."""
    net, pth, official, sha1, zip_bytes = made
    stem = f"drnd22-0758-{sha1[:8]}"
    name = f"drn_d_22-{hashlib.sha256(official).hexdigest()[:8]}.pth"
    zipped = sources.WeightsFile(
        "drn_d_22", "imgclsmob", f"{stem}.pth.zip",
        f"http://{UNRESOLVABLE}/v0.0.498/{stem}.pth.zip", "pytorchcv", sha1=sha1,
        member=f"{stem}.pth", release="v0.0.498", top5_error=7.58)
    plain = sources.WeightsFile("drn_d_22", "official", name, f"http://{UNRESOLVABLE}/{name}",
                                "reference", sha256_prefix=name[9:17])
    monkeypatch.setattr(sources, "FILES", (zipped, plain))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    for variable in ("KERAS_DRN_IMGCLSMOB_URL", "KERAS_DRN_WEIGHTS_URL", pretrained.DIR_ENV):
        monkeypatch.delenv(variable, raising=False)
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host == UNRESOLVABLE:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return Files(net, zipped, plain, zip_bytes, pth, official)


def _cached():
    folder = pathlib.Path(pretrained.cache_dir())
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _serve_both(server, files, monkeypatch):
    server.serve(files.zipped.file_name, files.zip_bytes)
    server.serve(files.plain.file_name, files.official_bytes)
    monkeypatch.setenv("KERAS_DRN_IMGCLSMOB_URL", server.url)
    monkeypatch.setenv("KERAS_DRN_WEIGHTS_URL", server.url)


def test_default_is_the_imgclsmob_zip_checked_and_cached(server, files, monkeypatch, capsys):
    _serve_both(server, files, monkeypatch)
    x = random_input((1, 40, 49, 3))
    for _ in range(2):  # the second call uses the cache: no request
        model = keras_drn.DRN_D_22(weights="imagenet", classifier_activation=None,
                                   include_preprocessing=False)
        np.testing.assert_allclose(to_numpy(model(x, training=False)), run_torch(files.net, x),
                                   atol=1e-4)
        line, = capsys.readouterr().out.splitlines()
        assert "imgclsmob ImageNet weights" in line and files.zipped.member in line
        assert server.requests == [f"/{files.zipped.file_name}"]
    assert _cached() == [files.zipped.member]  # the checked .pth; no zip, no temporary file
    backbone = keras_drn.DRN_D_22(weights="imagenet", include_top=False,
                                  include_preprocessing=False)
    assert "backbone" in capsys.readouterr().out
    np.testing.assert_allclose(to_numpy(backbone(x, training=False)),
                               run_torch(files.net, x, "features"), atol=1e-4)
    assert keras_drn.DRN_D_22(weights="imagenet", classes=5).output_shape == (None, 5)
    assert len(server.requests) == 1


def test_official_source_by_name_and_the_old_mirror_variable(server, files, monkeypatch,
                                                              capsys):
    _serve_both(server, files, monkeypatch)
    model = keras_drn.DRN_D_22(weights="imagenet:official", classifier_activation=None,
                               include_preprocessing=False)
    x = random_input((1, 33, 40, 3))
    np.testing.assert_allclose(to_numpy(model(x, training=False)), run_torch(files.net, x),
                               atol=1e-4)
    assert server.requests == [f"/{files.plain.file_name}"]  # via KERAS_DRN_WEIGHTS_URL
    assert f"official ImageNet weights, SHA-256 {files.plain.sha256_prefix}" in (
        capsys.readouterr().out)
    assert _cached() == [files.plain.file_name]


def test_an_unresolvable_first_source_falls_back_and_says_so(server, files, monkeypatch,
                                                             capsys):
    server.serve(files.plain.file_name, files.official_bytes)
    monkeypatch.setenv("KERAS_DRN_WEIGHTS_URL", server.url)  # imgclsmob: its own (dead) host
    keras_drn.DRN_D_22(weights="imagenet")
    assert "official ImageNet weights" in capsys.readouterr().out
    with pytest.raises(OSError, match=rf"(?s)imgclsmob: http://{UNRESOLVABLE}/v0.0.498/.*DNS "
                                      r"lookup failed.*Other sources: weights='imagenet:"
                                      r"official'.*keras-drn weights download drn_d_22"):
        keras_drn.DRN_D_22(weights="imagenet:imgclsmob")


def test_every_source_failing_names_each_failure_mirrors_and_the_manual_route(
        server, files, monkeypatch):
    bad = files.official_bytes[:-1] + bytes([files.official_bytes[-1] ^ 1])
    server.serve(files.plain.file_name, bad)  # the imgclsmob file is not served: 404
    monkeypatch.setenv("KERAS_DRN_IMGCLSMOB_URL", server.url)
    monkeypatch.setenv("KERAS_DRN_WEIGHTS_URL", server.url)
    with pytest.raises(pretrained.WeightsUnavailableError) as error:
        keras_drn.DRN_D_22(weights="imagenet")
    message = str(error.value)
    assert f"- imgclsmob: {server.url}{files.zipped.file_name}: HTTP error 404" in message
    actual = hashlib.sha256(bad).hexdigest()
    assert (f"- official: the file downloaded from {server.url}{files.plain.file_name} has "
            f"SHA-256 {actual}, which does not start with {files.plain.sha256_prefix}") in message
    assert "KERAS_DRN_IMGCLSMOB_URL" in message and "KERAS_DRN_WEIGHTS_URL" in message
    assert f"{pretrained.DIR_ENV}=DIR" in message and "keras-drn weights download" in message
    assert _cached() == []


@pytest.mark.parametrize("corruption", ["one_bit", "short_file", "cut_transfer"])
def test_a_wrong_or_cut_file_is_refused_and_not_kept(server, files, monkeypatch, corruption):
    data = files.zip_bytes
    if corruption == "cut_transfer":  # announces the full size, sends half, closes
        server.serve(files.zipped.file_name, data[: len(data) // 2], announced=len(data))
        expected = "transfer was cut"
    else:
        pth = files.pth_bytes
        pth = pth[:-1] + bytes([pth[-1] ^ 1]) if corruption == "one_bit" else pth[:1000]
        server.serve(files.zipped.file_name, _zip(files.zipped.member, pth))
        expected = (f"has SHA-1 {hashlib.sha1(pth).hexdigest()}, not the published "
                    f"{files.zipped.sha1}: corrupt")
    monkeypatch.setenv("KERAS_DRN_IMGCLSMOB_URL", server.url)
    with pytest.raises(OSError, match=expected):
        keras_drn.DRN_D_22(weights="imagenet:imgclsmob")
    assert _cached() == []


@pytest.mark.parametrize(
    "entries, match",
    [
        ([("../drnd22.pth", None)], "not a plain file name"),
        ([("/tmp/drnd22.pth", None)], "not a plain file name"),
        ([(None, None), ("second.pth", b"x")], "exactly one .pth file; it holds 2 entries"),
        ([("other.pth", None)], "holds 'other.pth'; expected"),
    ],
    ids=["traversal", "absolute", "two_entries", "wrong_name"],
)
def test_a_zip_with_an_unsafe_or_unexpected_entry_is_refused(server, files, monkeypatch,
                                                             tmp_path, entries, match):
    (first, _), extra = entries[0], entries[1:]
    body = _zip(first or files.zipped.member, files.pth_bytes, extra)
    server.serve(files.zipped.file_name, body)
    monkeypatch.setenv("KERAS_DRN_IMGCLSMOB_URL", server.url)
    with pytest.raises(OSError, match=match):
        keras_drn.DRN_D_22(weights="imagenet:imgclsmob")
    assert _cached() == []
    assert not (tmp_path.parent / "drnd22.pth").exists()


def test_a_zip_entry_over_the_size_bound_is_refused(server, files, monkeypatch):
    server.serve(files.zipped.file_name, files.zip_bytes)
    monkeypatch.setenv("KERAS_DRN_IMGCLSMOB_URL", server.url)
    monkeypatch.setattr(archive, "MAX_MEMBER_BYTES", len(files.pth_bytes) - 1)
    with pytest.raises(OSError, match=f"declares {len(files.pth_bytes):,} bytes, more than"):
        keras_drn.DRN_D_22(weights="imagenet:imgclsmob")


def _read_only(folder, monkeypatch):
    """Makes ``folder`` read-only; as root (who may write anyway) also makes os.access say
    so, which is what keras_drn checks before writing."""
    os.chmod(folder, 0o555)
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if (
        mode & os.W_OK and pathlib.Path(path).resolve() == pathlib.Path(folder).resolve())
        else real(path, mode, **kw))


def test_a_read_only_weights_folder_is_read_first_with_no_network(server, files, monkeypatch,
                                                                  tmp_path, capsys):
    folder = tmp_path / "kaggle_dataset"
    folder.mkdir()
    (folder / files.zipped.file_name).write_bytes(files.zip_bytes)  # the published zip as is
    _read_only(folder, monkeypatch)
    monkeypatch.setenv(pretrained.DIR_ENV, str(folder))
    model = keras_drn.DRN_D_22(weights="imagenet", classifier_activation=None,
                               include_preprocessing=False)
    x = random_input((1, 24, 31, 3))
    np.testing.assert_allclose(to_numpy(model(x, training=False)), run_torch(files.net, x),
                               atol=1e-4)
    assert str(folder / files.zipped.file_name) in capsys.readouterr().out
    assert server.requests == [] and _cached() == []

    os.chmod(folder, 0o755)
    (folder / files.plain.file_name).write_bytes(files.official_bytes[:500])
    with pytest.raises(OSError, match=f"{folder / files.plain.file_name} has SHA-256 .*"
                                      f"keras-drn weights download drn_d_22 --dir {folder}"):
        keras_drn.DRN_D_22(weights="imagenet:official")


def test_a_read_only_cache_reads_and_names_the_folder_and_variables_when_writing(
        server, files, monkeypatch):
    _serve_both(server, files, monkeypatch)
    keras_drn.DRN_D_22(weights="imagenet")  # fills the cache with the imgclsmob .pth
    cache = pathlib.Path(pretrained.cache_dir())
    _read_only(cache, monkeypatch)
    keras_drn.DRN_D_22(weights="imagenet")  # reading works
    with pytest.raises(PermissionError, match=rf"Cannot write weights into {cache}.*KERAS_HOME"
                                              rf".*{pretrained.DIR_ENV}"):
        keras_drn.DRN_D_22(weights="imagenet:official")
    assert len(server.requests) == 1


def test_cli_downloads_verifies_and_lists(server, files, monkeypatch, tmp_path, capsys):
    _serve_both(server, files, monkeypatch)
    target = tmp_path / "offline"
    assert cli.main(["weights", "download", "drn_d_22", "--dir", str(target),
                     "--source", "all"]) == 0
    out = capsys.readouterr().out
    assert "SHA-1" in out and "verified" in out
    assert sorted(p.name for p in target.iterdir()) == sorted([files.zipped.member,
                                                               files.plain.file_name])
    assert _cached() == []
    monkeypatch.setenv(pretrained.DIR_ENV, str(target))
    assert cli.main(["weights", "list"]) == 0
    listing = capsys.readouterr().out
    assert f"{target / files.zipped.member} (" in listing and "MiB)" in listing
    assert "imgclsmob*" in listing  # the default
    with refused(capsys, r"^keras-drn weights: error: No pretrained weights for "
                 r"\['drn_d_24'\]"):
        cli.main(["weights", "download", "drn_d_24"])


_DOWNLOAD = """
from keras_drn.weights import pretrained, sources
entry = sources.WeightsFile("drn_d_22", "official", {name!r}, {url!r}, "reference",
                            sha256_prefix={prefix!r})
print(pretrained.download(entry))
"""


def test_concurrent_processes_never_see_a_partial_file(server, files):
    """Two processes download the same file at once from a slow server; meanwhile the file's
    name in the cache is either absent or the whole, checked file."""
    name, data = files.plain.file_name, files.official_bytes
    server.serve(name, data)
    server.seconds_per_file = 4.0
    script = _DOWNLOAD.format(name=name, url=server.url + name,
                              prefix=files.plain.sha256_prefix)
    root = pathlib.Path(__file__).parents[2]
    processes = [subprocess.Popen([sys.executable, "-c", script], cwd=root, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for _ in range(2)]
    final = pathlib.Path(pretrained.cache_dir()) / name
    expected = hashlib.sha256(data).hexdigest()
    seen, saw_absent = set(), False
    while any(process.poll() is None for process in processes):
        saw_absent |= not final.exists()
        if final.exists():
            seen.add(hashlib.sha256(final.read_bytes()).hexdigest())
        time.sleep(0.05)
    for process in processes:
        out, err = process.communicate()
        assert process.returncode == 0, err
        assert out.strip().splitlines()[-1] == str(final)
    assert saw_absent  # the downloads were watched while in progress
    assert seen <= {expected}
    assert hashlib.sha256(final.read_bytes()).hexdigest() == expected
    assert _cached() == [name]  # no temporary file left behind


def test_a_pth_zip_path_of_the_reference_layout_loads(files, tmp_path):
    path = tmp_path / "mine.pth.zip"
    path.write_bytes(_zip("mine.pth", files.official_bytes))
    model = keras_drn.DRN_D_22(weights=str(path), classifier_activation=None)
    x = random_input((1, 30, 27, 3))
    np.testing.assert_allclose(to_numpy(model(x, training=False)), run_torch(files.net, x),
                               atol=1e-4)


def test_variants_without_weights_list_those_with():
    with pytest.raises(ValueError, match=r"no official ImageNet checkpoint for 'drn_d_24'; "
                                         r"variants with one: \['drn_a_50', 'drn_c_26'"):
        keras_drn.DRN_D_24(weights="imagenet")
    with pytest.raises(ValueError, match=r"Unknown weights name 'imagenet:fyu'.*"
                                         r"'imagenet:imgclsmob', 'imagenet:official'"):
        keras_drn.DRN_D_22(weights="imagenet:fyu")
    with pytest.raises(ValueError, match=r"'imgclsmob' has no ImageNet weights for 'drn_a_50'"
                                         r".*'imagenet:official'"):
        keras_drn.DRN_A_50(weights="imagenet:imgclsmob")


def test_only_http_urls(files):
    with pytest.raises(ValueError, match="http.*file:///etc/"):
        pretrained.download(files.plain, base_url="file:///etc/")


def test_table_matches_the_published_files(monkeypatch):
    for variable in ("KERAS_DRN_IMGCLSMOB_URL", "KERAS_DRN_WEIGHTS_URL"):
        monkeypatch.delenv(variable, raising=False)
    official = {
        "drn_a_50": "https://download.pytorch.org/models/resnet50-19c8e357.pth",
        "drn_c_26": "http://dl.yf.io/drn/drn_c_26-ddedf421.pth",
        "drn_c_42": "http://dl.yf.io/drn/drn_c_42-9d336e8c.pth",
        "drn_c_58": "http://dl.yf.io/drn/drn_c_58-0a53a92c.pth",
        "drn_d_22": "http://dl.yf.io/drn/drn_d_22-4bd2f8ea.pth",
        "drn_d_38": "http://dl.yf.io/drn/drn_d_38-eebb45f0.pth",
        "drn_d_54": "http://dl.yf.io/drn/drn_d_54-0e0534ff.pth",
        "drn_d_105": "http://dl.yf.io/drn/drn_d_105-12b40979.pth",
    }
    # pytorchcv 0.0.74, models/common/model_metainfos.csv: name, top-5 error, SHA-1, tag.
    imgclsmob = {
        "drn_c_26": ("drnc26", "0723", "e7306483781db61f71302eda6769d7d9fd126bf6", "v0.0.508"),
        "drn_c_42": ("drnc42", "0628", "8817241f62263c6375ff3c17a9d34f42067a114d", "v0.0.556"),
        "drn_c_58": ("drnc58", "0527", "3f74be98f80db3273ed764ded5bcb5d8bdf0b907", "v0.0.559"),
        "drn_d_22": ("drnd22", "0758", "02cb44bdea9b05e988e65576f79f5f5c133f2664", "v0.0.498"),
        "drn_d_38": ("drnd38", "0643", "496f648b8b8427050ad3327077f9a9b7a07fbcc6", "v0.0.552"),
        "drn_d_54": ("drnd54", "0517", "caa3c85dbdb39397f049da649d196b15704427b3", "v0.0.554"),
        "drn_d_105": ("drnd105", "0501", "8dc6aa76c16cb1964929adf53183d1e0324ae051",
                      "v0.0.564"),
    }
    rows = {(f.variant, f.source): f for f in sources.FILES}
    assert {v: pretrained.url_of(rows[v, "official"]) for v in official} == official
    for variant, (name, error, sha1, tag) in imgclsmob.items():
        row = rows[variant, "imgclsmob"]
        stem = f"{name}-{error}-{sha1[:8]}"
        assert pretrained.url_of(row) == (
            f"https://github.com/osmr/imgclsmob/releases/download/{tag}/{stem}.pth.zip")
        assert (row.sha1, row.member, row.top5_error) == (sha1, f"{stem}.pth", int(error) / 100)
        assert sources.files_for(variant)[0] is row  # the default of weights="imagenet"
    assert sources.files_for("drn_a_50")[0].source == "official"
    assert len(sources.FILES) == len(official) + len(imgclsmob)


def test_a_trickling_mirror_stops_at_the_deadline_of_the_whole_download(server, files,
                                                                        monkeypatch):
    """One byte a second never trips the per-read timeout; the whole download's deadline
    (DOWNLOAD_DEADLINE_SECONDS, made short here) stops it, and the message says so."""
    server.serve(files.zipped.file_name, files.zip_bytes[:20], announced=len(files.zip_bytes))
    server.seconds_per_file = 20.0  # 20 chunks of one byte, a second apart
    monkeypatch.setenv("KERAS_DRN_IMGCLSMOB_URL", server.url)
    monkeypatch.setattr(pretrained, "DOWNLOAD_DEADLINE_SECONDS", 0.5)
    with pytest.raises(OSError, match=rf"{files.zipped.file_name}: the whole download has a "
                                      rf"deadline of 0.5 s, and \d of {len(files.zip_bytes):,} "
                                      "bytes came in that time: the server sends too slowly"):
        pretrained.fetch_first("drn_d_22", "imagenet:imgclsmob")
    assert _cached() == []


def test_a_zip_bomb_in_the_weights_folder_is_refused_by_its_declared_size(files, monkeypatch,
                                                                          tmp_path):
    folder = tmp_path / "kaggle_dataset"
    folder.mkdir()
    size = files.zipped.max_bytes + 1  # zeros: a few hundred kB deflated
    path = folder / files.zipped.file_name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zipped:
        with zipped.open(files.zipped.member, "w") as entry:
            for start in range(0, size, 2**24):
                entry.write(bytes(min(2**24, size - start)))
    monkeypatch.setenv(pretrained.DIR_ENV, str(folder))
    with pytest.raises(OSError, match=rf"{path}: its entry '{files.zipped.member}' declares "
                                      rf"{size:,} bytes, more than the "
                                      rf"{files.zipped.max_bytes:,} .*refused.*Replace it"):
        pretrained.fetch_first("drn_d_22", "imagenet:imgclsmob")


def test_a_damaged_zip_in_the_cache_is_discarded_and_downloaded_again(server, files,
                                                                      monkeypatch):
    cache = pathlib.Path(pretrained.cache_dir())
    cache.mkdir(parents=True)
    damaged = cache / files.zipped.file_name
    damaged.write_bytes(files.zip_bytes[: len(files.zip_bytes) // 2])  # a cut copy
    server.serve(files.zipped.file_name, files.zip_bytes)
    monkeypatch.setenv("KERAS_DRN_IMGCLSMOB_URL", server.url)
    entry, path = pretrained.fetch_first("drn_d_22", "imagenet:imgclsmob")
    assert server.requests == [f"/{files.zipped.file_name}"]
    assert path == str(cache / files.zipped.member) and _cached() == [files.zipped.member]
    assert hashlib.sha1(pathlib.Path(path).read_bytes()).hexdigest() == files.zipped.sha1
