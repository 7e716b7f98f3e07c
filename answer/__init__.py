"""Answering questions: the router that picks the cheapest path that is still right, and prices every answer."""

from answer.router import Answerer, Plan

__all__ = ["Answerer", "Plan"]
