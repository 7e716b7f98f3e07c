"""Turning measured work into money, from the price table in Settings.

Definitions (per answer):
- cpu_seconds: process CPU time (user + system, all threads) spent answering, from the cache lookup to the
  finished text. On a shared server other requests' threads can add to it; on the CLI and in benchmarks it is exact.
- usd_local: cpu_seconds as core-hours at `usd_per_cpu_core_hour` (what this machine's CPU time costs).
- usd_api_equivalent: the LLM tokens this answer actually used (local or external) priced at the hosted-API rates
  `api_usd_per_1m_prompt/completion`: what the same tokens would have cost on a hosted API. Zero when no LLM ran
  (passage, cache, most abstain answers): we never charge the tokens an always-LLM answer *would* have used.
- usd_external: what the external tier actually charged, at `external_usd_per_1m_prompt/completion`.
"""

from __future__ import annotations

from penny import Cost, Settings


def price(cost: Cost, settings: Settings, external_prompt_tokens: int = 0, external_completion_tokens: int = 0) -> Cost:
    """Fill the money fields of `cost` from its measured fields."""
    cost.usd_local = cost.cpu_seconds / 3600 * settings.usd_per_cpu_core_hour
    cost.usd_api_equivalent = (
        cost.llm_prompt_tokens * settings.api_usd_per_1m_prompt
        + cost.llm_completion_tokens * settings.api_usd_per_1m_completion
    ) / 1e6
    cost.usd_external = (
        external_prompt_tokens * settings.external_usd_per_1m_prompt
        + external_completion_tokens * settings.external_usd_per_1m_completion
    ) / 1e6
    return cost
