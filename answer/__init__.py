"""Answering questions: the router that picks the cheapest path that is still right, and prices every answer."""

from answer.router import Answerer, Plan, get_answerer

__all__ = ["Answerer", "Plan", "get_answerer"]
