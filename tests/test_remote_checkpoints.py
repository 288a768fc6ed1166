"""``checkpoints.remote.fetch``: model-zoo names and URLs to files in torch.hub's cache.

Every download comes from an HTTP server on 127.0.0.1 serving a tmp folder, never the internet;
names are pointed at it through mmengine's own override, ``$MMENGINE_HOME/open_mmlab.json``.
Expected URLs come from mmengine's and torchvision's tables, expected bytes from the served files.
"""
import hashlib
import http.server
import json
import os
import socket
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torchvision
from mmengine.runner import checkpoint as mmengine_checkpoint

from regnet_backbone.checkpoints.errors import CheckpointNotFoundError, CheckpointReadError
from regnet_backbone.checkpoints.remote import fetch

PAYLOAD = bytes(range(256)) * 64


@pytest.fixture(autouse=True)
def homes(tmp_path, monkeypatch):
    """Isolated TORCH_HOME (the download cache) and MMENGINE_HOME (the open_mmlab.json override)."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.setenv('MMENGINE_HOME', str(tmp_path / 'mmengine'))
    (tmp_path / 'mmengine').mkdir()
    cache = tmp_path / 'torch' / 'hub' / 'checkpoints'
    assert torch.hub.get_dir() == str(cache.parent), 'torch.hub.set_dir was called: no TORCH_HOME'
    return SimpleNamespace(cache=cache, mmengine=tmp_path / 'mmengine')


@pytest.fixture
def server(tmp_path):
    """Serves ``root``; ``/truncated/NAME`` announces NAME's full length but sends half of it."""
    root = tmp_path / 'served'
    root.mkdir()
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self):
            requests.append(self.path)
            if not self.path.startswith('/truncated/'):
                return super().do_GET()
            data = (root / self.path.rpartition('/')[2]).read_bytes()
            self.send_response(200)
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data[:len(data) // 2])
            self.close_connection = True

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield SimpleNamespace(root=root, url=f'http://127.0.0.1:{httpd.server_address[1]}',
                          requests=requests)
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def serve(server, name: str, data: bytes = PAYLOAD) -> str:
    (server.root / name).write_bytes(data)
    return f'{server.url}/{name}'


def override(homes, **names):
    """Write ``$MMENGINE_HOME/open_mmlab.json``, the table mmengine merges over its own."""
    (homes.mmengine / 'open_mmlab.json').write_text(json.dumps(names))


def cached(homes):
    return sorted(os.listdir(homes.cache)) if homes.cache.exists() else []


def one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert '\n' not in message, message
    return message


def test_open_mmlab_name_downloads_once_into_the_torch_hub_cache(homes, server):
    override(homes, tiny_regnet=serve(server, 'tiny_regnet.pth'))
    path = fetch('open-mmlab://tiny_regnet')
    assert path == str(homes.cache / 'tiny_regnet.pth')
    assert Path(path).read_bytes() == PAYLOAD
    assert server.requests == ['/tiny_regnet.pth']
    assert fetch('open-mmlab://tiny_regnet') == path
    assert fetch('openmmlab://tiny_regnet') == path  # mmengine's second spelling
    assert len(server.requests) == 1
    assert cached(homes) == ['tiny_regnet.pth']


def test_deprecated_open_mmlab_name_is_renamed_as_mmengine_does(homes, server):
    old, new = next(iter(mmengine_checkpoint.get_deprecated_model_names().items()))
    override(homes, **{new: serve(server, 'renamed.pth')})
    assert Path(fetch(f'open-mmlab://{old}')).read_bytes() == PAYLOAD


def test_open_mmlab_entry_may_name_a_file_under_mmengine_home(homes, server):
    (homes.mmengine / 'mine.pth').write_bytes(PAYLOAD)
    override(homes, mine='mine.pth', gone='gone.pth')
    assert fetch('open-mmlab://mine') == str(homes.mmengine / 'mine.pth')
    with pytest.raises(CheckpointNotFoundError) as excinfo:
        fetch('open-mmlab://gone')
    assert str(homes.mmengine / 'gone.pth') in one_line(excinfo)
    assert server.requests == []


def test_sha256_prefix_in_the_file_name_is_checked(homes, server):
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    good = serve(server, f'tiny-{digest[:8]}.pth')
    assert Path(fetch(good)).read_bytes() == PAYLOAD
    wrong = 'f' if digest[0] != 'f' else '0'
    bad = serve(server, f'tiny-{wrong}{digest[1:8]}.pth')
    override(homes, bad_hash=bad)
    with pytest.raises(CheckpointReadError) as excinfo:
        fetch('open-mmlab://bad_hash')
    assert bad in one_line(excinfo)
    assert cached(homes) == [f'tiny-{digest[:8]}.pth']  # no partial or temporary file


def test_version_number_in_a_pycls_name_is_not_taken_for_a_hash(homes, server):
    name = 'RegNetX-3.2GF_dds_8gpu.pyth'  # torch.hub.HASH_REGEX alone finds hash '3' here
    assert torch.hub.HASH_REGEX.search(name).group(1) == '3'
    assert not hashlib.sha256(PAYLOAD).hexdigest().startswith('3')
    assert Path(fetch(serve(server, name))).read_bytes() == PAYLOAD


def test_truncated_download_of_a_hashed_name_leaves_nothing(homes, server):
    name = f'tiny-{hashlib.sha256(PAYLOAD).hexdigest()[:8]}.pth'
    serve(server, name)
    url = f'{server.url}/truncated/{name}'
    with pytest.raises(CheckpointReadError) as excinfo:
        fetch(url)
    assert url in one_line(excinfo)
    assert cached(homes) == []


def test_truncated_download_without_a_hash_is_dropped_when_read(homes, server):
    """torch.hub keeps a body cut short when the name has no hash to check (http.client ends the
    read without an error); reading it is the check: one line, and the cached copy goes, so the
    next run downloads it again."""
    from regnet_backbone.checkpoints.io import read_checkpoint
    torch.save({'w': torch.arange(1000.)}, server.root / 'tiny.pth')
    url = f'{server.url}/truncated/tiny.pth'
    assert fetch(url) == str(homes.cache / 'tiny.pth')  # what torch.hub leaves
    assert cached(homes) == ['tiny.pth']
    with pytest.raises(CheckpointReadError) as excinfo:
        read_checkpoint(url)
    assert url in one_line(excinfo) and 'removed' in str(excinfo.value)
    assert cached(homes) == []
    with pytest.raises(CheckpointReadError):
        read_checkpoint(url)
    assert server.requests == ['/truncated/tiny.pth'] * 2


def test_http_404_is_one_line_naming_the_url(homes, server):
    url = f'{server.url}/missing.pth'
    with pytest.raises(CheckpointNotFoundError) as excinfo:
        fetch(url)
    message = one_line(excinfo)
    assert url in message and '404' in message
    assert cached(homes) == []


def test_refused_connection_is_one_line_naming_the_url(homes):
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener now
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    url = f'http://127.0.0.1:{port}/tiny.pth'
    override(homes, offline=url)
    with pytest.raises(CheckpointNotFoundError) as excinfo:
        fetch('open-mmlab://offline')
    assert url in one_line(excinfo)
    assert cached(homes) == []


def test_unknown_zoo_name_suggests_the_closest_one():
    assert 'regnetx_3.2gf' in mmengine_checkpoint.get_external_models()
    with pytest.raises(CheckpointNotFoundError) as excinfo:
        fetch('open-mmlab://regnetx_3.2g')
    assert 'open-mmlab://regnetx_3.2gf?' in one_line(excinfo)
    # torchvision's own spelling of a weight is not a key of mmengine's table: point to the key
    assert 'regnet_x_400mf.imagenet1k_v1' in mmengine_checkpoint.get_torchvision_models()
    with pytest.raises(CheckpointNotFoundError) as excinfo:
        fetch('torchvision://RegNet_X_400MF_Weights.IMAGENET1K_V1')
    assert 'torchvision://regnet_x_400mf.imagenet1k_v1?' in one_line(excinfo)


@pytest.mark.parametrize('name', ['s3://bucket/regnetx_3.2gf.pth', 'open-mmlb://regnetx_3.2gf',
                                  'pavi://regnetx_3.2gf'])
def test_unsupported_prefix_is_one_line_naming_the_supported_ones(name):
    with pytest.raises(CheckpointNotFoundError) as excinfo:
        fetch(name)
    message = one_line(excinfo)
    assert name in message
    assert all(p in message for p in ('open-mmlab://', 'torchvision://', 'mmcls://', 'https://'))


@pytest.mark.parametrize('name, weights', [
    ('regnet_x_400mf', 'RegNet_X_400MF_Weights.IMAGENET1K_V1'),  # torchvision 0.12's model_urls key
    ('regnet_x_400mf.imagenet1k_v2', 'RegNet_X_400MF_Weights.IMAGENET1K_V2'),
    ('regnet_y_800mf.default', 'RegNet_Y_800MF_Weights.DEFAULT'),
])
def test_torchvision_name_resolves_to_torchvision_url(homes, name, weights):
    url = torchvision.models.get_weight(weights).url
    path = homes.cache / os.path.basename(url)  # already cached: resolving must not download
    homes.cache.mkdir(parents=True)
    path.write_bytes(PAYLOAD)
    assert fetch(f'torchvision://{name}') == str(path)
    assert path.read_bytes() == PAYLOAD


def test_mmcls_name_resolves_to_mmengine_url(homes):
    name, url = next(iter(mmengine_checkpoint.get_mmcls_models().items()))
    homes.cache.mkdir(parents=True)
    (homes.cache / os.path.basename(url)).write_bytes(PAYLOAD)
    assert fetch(f'mmcls://{name}') == str(homes.cache / os.path.basename(url))


def test_local_path_is_returned_unchanged(tmp_path):
    assert fetch(str(tmp_path / 'regnet.pth')) == str(tmp_path / 'regnet.pth')
