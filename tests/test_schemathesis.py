"""Schemathesis against the app in process: every operation in the OpenAPI schema, positive and negative data,
every check (no server error, responses and status codes as documented, auth enforced, ...), with an admin key.

Bounded to a few minutes on 2 cores: a fixed number of examples per operation and mode, no shrinking, and the
LLM left out (the configured model does not exist, so LLM-routed questions fall back to passages at once)."""

from __future__ import annotations

import time

import pytest
import schemathesis
from api_support import build_corpus, key
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from api.app import create_app

pytestmark = pytest.mark.slow
EXAMPLES = 20  # per operation and generation mode
CONFIG = {
    # 400 is the API's answer to a well-formed request it cannot use, documented on every operation: a question of
    # blanks, a conversation whose last message is not the user's, feedback on a question instead of an answer
    "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "400", "401", "403", "404", "409", "429"]}},
    # unknown query parameters are ignored, as HTTP APIs do; bodies with unknown fields are refused
    "generation": {"allow-extra-parameters": False},
}
BOUNDED = hypothesis_settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    settings = build_corpus(
        tmp_path_factory.mktemp("schemathesis"), rate_limit_per_minute=100_000, auth_failures_per_minute=100_000
    ).model_copy(update={"llm_model": "/nonexistent/model.gguf"})
    admin = key(settings, "fuzzer", ["everyone", "finance"], admin=True)
    config = SchemathesisConfig.from_dict(CONFIG)
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(settings), config=config)
    return schema, admin


def test_the_api_conforms_to_its_schema(fuzzed):
    schema, headers = fuzzed
    failures: list[str] = []
    examples, started = 0, time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @BOUNDED
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case) -> None:
                nonlocal examples
                examples += 1
                case.call_and_validate(headers=headers)

            try:
                check()
            except Unsatisfiable:  # an operation without parameters has no invalid request to make
                continue
            except (Exception, BaseExceptionGroup) as exc:  # gather every operation's failures, report them together
                failures.append(f"{operation.label} ({mode}): {exc}")
    print(f"schemathesis: {examples} examples in {time.monotonic() - started:.0f} s")
    assert not failures, "\n\n".join(failures)
