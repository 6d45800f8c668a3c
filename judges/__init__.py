"""LLM-as-judge: rubric and pairwise judges over any OpenAI-compatible endpoint, a local
G-Eval judge, a deepeval adapter and judge-human agreement.

Imports are lazy (`judges.RubricJudge` loads only what it needs), so the CLI starts instantly.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EndpointConfig": "judges.client",
    "JudgeClient": "judges.client",
    "Criterion": "judges.base",
    "Subject": "judges.base",
    "Verdict": "judges.base",
    "RubricJudge": "judges.rubric",
    "PairwiseJudge": "judges.pairwise",
    "LocalJudge": "judges.local",
    "agreement": "judges.agreement",
    "TunegateDeepEvalModel": "judges.deepeval_adapter",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'judges' has no attribute {name!r}")
    module = importlib.import_module(_EXPORTS[name])
    return module if name == "agreement" else getattr(module, name)
