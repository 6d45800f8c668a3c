"""Device/dtype choice and its place in the fingerprint, and batch_size=auto, all on CPU.

No GPU exists here: the CUDA/MPS probes of harness.models.device are patched to exercise the
choice logic, and an out-of-memory error is raised on demand by a wrapper around the real
SmolLM2 (a real OOM cannot be produced at will). Everything CUDA itself does is checked by
bench/gpu_check.py on a machine that has one.
"""

from __future__ import annotations

import dataclasses
import json

import duckdb
import pytest

from harness.config import GenerationParams
from harness.errors import UserError
from harness.models import device as devmod
from harness.models import resolve_model
from harness.models.batching import Batcher, is_oom, parse_batch_size
from harness.models.device import choose_placement
from harness.models.fingerprint import fingerprint
from tests.conftest import run_cli


@pytest.fixture()
def gpu(monkeypatch):
    """A machine with `count` CUDA devices (bf16 or not) and no MPS, as the probes report it."""

    def make(bf16: bool = True, count: int = 1) -> None:
        monkeypatch.setattr(devmod, "cuda_available", lambda: True)
        monkeypatch.setattr(devmod, "cuda_bf16_supported", lambda: bf16)
        monkeypatch.setattr(devmod, "cuda_device_count", lambda: count)
        monkeypatch.setattr(devmod, "mps_available", lambda: False)

    return make


@pytest.fixture()
def cpu_only(monkeypatch):
    monkeypatch.setattr(devmod, "cuda_available", lambda: False)
    monkeypatch.setattr(devmod, "mps_available", lambda: False)


# -- the choice ---------------------------------------------------------------------------------
def test_auto_picks_cuda_with_bf16_or_fp16(gpu):
    gpu(bf16=True)
    assert choose_placement() == devmod.Placement("cuda", "bfloat16")
    gpu(bf16=False)
    assert choose_placement() == devmod.Placement("cuda", "float16")
    assert choose_placement("cuda", "float32").fingerprint_options() == {"device": "cuda"}


def test_explicit_cpu_on_a_gpu_machine_is_cpu_float32(gpu):
    gpu()
    assert choose_placement("cpu") == devmod.Placement("cpu", "float32")
    assert choose_placement("cpu", "bfloat16") == devmod.Placement("cpu", "bfloat16")


def test_mps_when_no_cuda(monkeypatch):
    monkeypatch.setattr(devmod, "cuda_available", lambda: False)
    monkeypatch.setattr(devmod, "mps_available", lambda: True)
    assert choose_placement() == devmod.Placement("mps", "float16")
    monkeypatch.setattr(devmod, "mps_available", lambda: False)
    with pytest.raises(UserError, match="MPS is not available"):
        choose_placement("mps")


def test_device_map_only_on_cuda(gpu, cpu_only):
    assert choose_placement("auto", "auto", "auto").device_map is None  # CPU: nothing to spread
    gpu(count=2)
    p = choose_placement("auto", "auto", "auto")
    assert (p.device, p.device_map) == ("cuda", "auto")
    assert p.fingerprint_options() == {"device": "cuda", "dtype": "bfloat16", "device_map": "auto"}


def test_missing_cuda_or_index_is_a_user_error(gpu, cpu_only):
    with pytest.raises(UserError, match="CUDA is not available"):
        choose_placement("cuda")
    gpu(count=2)
    assert choose_placement("cuda:1").device == "cuda:1"
    with pytest.raises(UserError, match="2 CUDA device"):
        choose_placement("cuda:2")


def test_cli_device_cuda_without_cuda_exits_2_and_stores_nothing(tmp_path):
    db = tmp_path / "t.duckdb"
    r = run_cli("run", "--model", "smollm2?device=cuda", "--suite", "finetune-qa", "--db", str(db))
    assert r.returncode == 2, r.stderr
    assert "device=cuda was asked for, but CUDA is not available here" in r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert not db.exists()


# -- the fingerprint ------------------------------------------------------------------------------
def test_cpu_specs_keep_the_fingerprint_from_before_device_choice(cpu_only):
    weights = resolve_model("smollm2").weights
    before = fingerprint(weights, None, {})  # what `smollm2` resolved to before device choice
    for spec in ("smollm2", "smollm2?device=cpu", "smollm2?dtype=float32", "smollm2?device=auto"):
        r = resolve_model(spec)
        assert (r.fingerprint, r.options, r.device) == (before, {}, "cpu"), spec
    # an explicit non-default dtype was fingerprinted before too, the same way
    assert resolve_model("smollm2?dtype=bfloat16").fingerprint == fingerprint(
        weights, None, {"dtype": "bfloat16"}
    )


def test_gpu_placements_get_their_own_fingerprints(gpu):
    cpu = fingerprint(resolve_model("smollm2?device=cpu").weights, None, {})
    gpu(bf16=True)
    auto = resolve_model("smollm2")
    assert (auto.device, auto.options) == ("cuda", {"device": "cuda", "dtype": "bfloat16"})
    assert resolve_model("smollm2?device=cpu").fingerprint == cpu  # pinned to the CPU: the same numbers
    gpu(bf16=False)
    fp16 = resolve_model("smollm2")
    gpu(count=2)
    second = resolve_model("smollm2?device=cuda:1")
    assert len({cpu, auto.fingerprint, fp16.fingerprint}) == 3
    assert second.fingerprint == auto.fingerprint  # cuda:0 and cuda:1 compute the same numbers
    assert second.device == "cuda:1"


def test_probes_without_torch_mean_the_cpu(monkeypatch):
    """A core install (no torch) resolving a local spec, as gate's spec lookup does."""
    monkeypatch.setattr(devmod, "_has_torch", lambda: False)
    assert not devmod.cuda_available() and not devmod.mps_available()
    assert choose_placement() == devmod.Placement("cpu", "float32")


# -- batch_size=auto --------------------------------------------------------------------------------
class OOMAbove:
    """The real model, but a batch of more than `n` rows fails as CUDA does when memory runs out."""

    def __init__(self, model, n: int, error: type[Exception]) -> None:
        self.inner, self.n, self.error, self.sizes = model, n, error, []

    def _check(self, input_ids) -> None:
        self.sizes.append(input_ids.shape[0])
        if input_ids.shape[0] > self.n:
            raise self.error("CUDA out of memory. Tried to allocate 2.00 GiB")

    def __call__(self, input_ids, **kw):
        self._check(input_ids)
        return self.inner(input_ids=input_ids, **kw)

    def generate(self, input_ids, **kw):
        self._check(input_ids)
        return self.inner.generate(input_ids=input_ids, **kw)

    def __getattr__(self, name):
        return getattr(self.inner, name)


PROMPTS = ["Question: what does LoRA train?\nAnswer:", "The capital of France is", "1, 2, 3,", "DPO"]
PAIRS = [
    ("The capital of France is", " Paris"),
    ("2 + 2 =", " 4"),
    ("Colours: red, green,", " blue"),
    ("A", " B"),
]
TEXTS = ["Fine-tuning changes a few weights.", "The sea is calm tonight, and the moon is bright."]


def _collect(batches) -> dict:
    return {i: r for b in batches for i, r in b}


@pytest.fixture()
def oom(smollm2, monkeypatch):
    """smollm2 whose forward and generate raise an OOM-like error above `n` rows."""

    def make(n: int, error: type[Exception]) -> OOMAbove:
        wrapper = OOMAbove(smollm2.model, n, error)
        monkeypatch.setattr(smollm2, "_model", wrapper)
        monkeypatch.setattr(smollm2, "_batchers", {})
        return wrapper

    return make


def test_auto_halves_on_oom_and_matches_batch_1(smollm2, oom):
    import torch

    params = GenerationParams(max_new_tokens=3)
    single_gen = _collect(smollm2.generate(PROMPTS, params, 1))
    single_ll = _collect(smollm2.loglikelihood(PAIRS, 1))
    single_roll = _collect(smollm2.rolling_loglikelihood(TEXTS, 8, 8, 1))

    wrapper = oom(2, torch.cuda.OutOfMemoryError)
    gen = _collect(smollm2.generate(PROMPTS, params, "auto"))
    assert wrapper.sizes == [4, 2, 2]  # CPU auto starts at 8 (all 4 here), halves until it fits
    assert {i: g.text for i, g in gen.items()} == {i: g.text for i, g in single_gen.items()}
    assert all(g.error is None for g in gen.values())

    wrapper = oom(2, RuntimeError)  # the plain RuntimeError text of older torch / MPS
    ll = _collect(smollm2.loglikelihood(PAIRS, "auto"))
    roll = _collect(smollm2.rolling_loglikelihood(TEXTS, 8, 8, "auto"))
    assert max(wrapper.sizes) > 2 and wrapper.sizes[-1] <= 2
    for i, r in single_ll.items():
        assert ll[i].logprob == pytest.approx(r.logprob, rel=1e-4, abs=1e-4)
        assert ll[i].is_greedy == r.is_greedy
    for i, r in single_roll.items():
        assert roll[i].nll == pytest.approx(r.nll, rel=1e-4) and roll[i].n_tokens == r.n_tokens


def test_a_fixed_batch_size_keeps_todays_behaviour_on_oom(smollm2, oom):
    """No search with an integer: generation stores error rows, a forward raises, as before."""
    import torch

    oom(2, torch.cuda.OutOfMemoryError)
    gen = _collect(smollm2.generate(PROMPTS, GenerationParams(max_new_tokens=3), 4))
    assert all(g.text is None and "OutOfMemoryError" in g.error for g in gen.values())
    with pytest.raises(torch.cuda.OutOfMemoryError):
        _collect(smollm2.loglikelihood(PAIRS, 4))


def test_batcher_rules():
    assert Batcher("auto", "cuda:0").size == 64 and Batcher("auto", "cpu").size == 8
    assert Batcher(3, "cuda").size == 3
    assert is_oom(RuntimeError("MPS backend out of memory")) and not is_oom(RuntimeError("shape mismatch"))
    b = Batcher("auto", "cpu")

    def call(batch):
        if len(batch) > 1:
            raise ValueError("not memory")
        return batch

    with pytest.raises(ValueError):  # only memory errors are retried
        list(b.run([0, 1, 2], call))
    assert parse_batch_size("auto") == "auto" and parse_batch_size("4") == 4
    for bad in ("0", "-1", "x"):
        with pytest.raises(UserError, match="positive integer or auto"):
            parse_batch_size(bad)


def test_lm_eval_gets_auto_only_on_a_gpu(smollm2, monkeypatch):
    from suites.benchmark_run import make_lm

    assert make_lm(smollm2, "auto", 256).batch_size == 8  # CPU: lm-eval's trial forwards cost more
    monkeypatch.setattr(smollm2, "resolved", dataclasses.replace(smollm2.resolved, device="cuda"))
    assert make_lm(smollm2, "auto", 256).batch_size == "auto"  # lm-eval's own search on the GPU


def test_cli_batch_size_auto_records_device_and_dtype(tmp_path):
    db = tmp_path / "t.duckdb"
    r = run_cli("run", "-m", "smollm2", "-s", "finetune-qa", "--limit", "1", "-b", "auto", "--db", str(db))
    assert r.returncode == 0, r.stderr
    con = duckdb.connect(str(db), read_only=True)
    (config,) = con.execute("SELECT config FROM runs").fetchone()
    config = json.loads(config)
    assert config["batch_size"] == "auto"
    assert config["backend"] == {
        "backend": "hf",
        "device": "cpu",
        "dtype": "float32",
        "load_in_4bit": False,
        "device_map": None,
    }
    bad = run_cli("run", "-m", "smollm2", "-s", "finetune-qa", "-b", "lots", "--db", str(db))
    assert bad.returncode == 2 and "positive integer or auto" in bad.stdout + bad.stderr


# -- trainers and merge -----------------------------------------------------------------------------
def test_trainer_and_merge_devices(gpu, cpu_only):
    from harness.models.resolve import ResolvedModel
    from harness.models.spec import ModelSpec
    from trainers.config import LoadedConfig, SFTTrainConfig
    from trainers.merge import merge_device
    from trainers.model import trainer_device_args

    loaded = LoadedConfig(SFTTrainConfig(name="x", data={"train": "finetune-sft"}), None)
    assert trainer_device_args("cpu", loaded) == {}  # a CPU-only machine: exactly as before
    gpu()
    assert trainer_device_args("cpu", loaded) == {"use_cpu": True}  # pinned to the CPU on a GPU box
    assert trainer_device_args("cuda", loaded) == {}
    with pytest.raises(UserError, match="CUDA_VISIBLE_DEVICES=1"):
        trainer_device_args("cuda:1", loaded)

    def resolved(options, device):
        return ResolvedModel(
            ModelSpec("x", "hf", "/x", options=options), None, None, {}, "f" * 64, None, device
        )

    assert merge_device(resolved({}, "cuda")) == "cpu"  # auto: merge (float64) on the CPU
    assert merge_device(resolved({"device": "cuda"}, "cuda")) == "cuda"
