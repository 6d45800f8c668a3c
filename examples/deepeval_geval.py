"""deepeval's GEval graded by any OpenAI-compatible server through tunegate's judge client.

    pip install deepeval
    TUNEGATE_JUDGE_BASE_URL=http://127.0.0.1:8080/v1 TUNEGATE_JUDGE_MODEL=my-judge \
        python examples/deepeval_geval.py

The client brings concurrency limits, retries honouring Retry-After, structured-output
negotiation (llama.cpp's json_object+schema included) and, with a store, cached calls.
Telemetry is switched off before deepeval is imported.
"""

from harness.store import Store
from judges.client import EndpointConfig, JudgeClient
from judges.deepeval_adapter import TunegateDeepEvalModel, import_deepeval

import_deepeval()
from deepeval.metrics import GEval  # noqa: E402
from deepeval.test_case import LLMTestCase, SingleTurnParams  # noqa: E402

with Store("deepeval-judgments.duckdb") as store:
    model = TunegateDeepEvalModel(JudgeClient(EndpointConfig(max_tokens=256)), store=store)
    metric = GEval(
        name="Correctness",
        criteria="Is the actual output factually correct given the expected output?",
        evaluation_params=[
            SingleTurnParams.INPUT,
            SingleTurnParams.ACTUAL_OUTPUT,
            SingleTurnParams.EXPECTED_OUTPUT,
        ],
        model=model,
        async_mode=False,
    )
    metric.measure(LLMTestCase(input="Capital of France?", actual_output="Paris", expected_output="Paris"))
    print(f"score {metric.score:.2f}: {metric.reason}")
