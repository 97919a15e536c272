"""The command line as a user meets it: help, version, and clear errors (never
a crash) for bad arguments and broken model files."""
import os
import subprocess

import pytest


def run(lp_bin, *args, **kw):
    return subprocess.run([lp_bin, *args], capture_output=True, text=True, timeout=120, **kw)


def test_help_and_version(lp_bin):
    p = run(lp_bin, "--help")
    assert p.returncode == 0 and "generate" in p.stdout and "serve" in p.stdout
    p = run(lp_bin, "--version")
    assert p.returncode == 0 and p.stdout.startswith("loraplex ")
    p = run(lp_bin, "generate", "--help")
    assert p.returncode == 0 and "--prompt-ids" in p.stdout


def test_unknown_command_and_options(lp_bin):
    p = run(lp_bin, "frobnicate")
    assert p.returncode == 2 and "unknown command" in p.stderr
    p = run(lp_bin, "generate", "--model", "x", "--prompt", "hi", "--max-tokens", "-3")
    assert p.returncode == 2 and "max-tokens" in p.stderr
    p = run(lp_bin, "generate", "--model", "x")
    assert p.returncode == 2


def test_missing_model_file(lp_bin, tmp_path):
    p = run(lp_bin, "generate", "--model", str(tmp_path / "nope.gguf"), "--prompt", "hi")
    assert p.returncode == 1
    assert "nope.gguf" in p.stderr


@pytest.mark.parametrize("cut", [0, 3, 4, 8, 24, 100, 5000])
def test_truncated_gguf_is_a_clear_error(lp_bin, default_model, tmp_path, cut):
    with open(default_model, "rb") as f:
        data = f.read(cut)
    bad = tmp_path / "truncated.gguf"
    bad.write_bytes(data)
    p = run(lp_bin, "generate", "--model", str(bad), "--prompt", "hi")
    assert p.returncode == 1, p.stderr
    assert p.stderr.startswith("loraplex generate: ")
    assert len(p.stderr.strip()) > len("loraplex generate: ") + 5


def test_tokenize_json(lp_bin, default_model):
    p = run(lp_bin, "tokenize", "--model", default_model, "--text", "Hello world", "--json")
    assert p.returncode == 0, p.stderr
    import json
    ids = json.loads(p.stdout)["ids"]
    assert len(ids) >= 2 and all(isinstance(i, int) for i in ids)
