"""Shared by the examples: an openai client for r1d and the served model id.
Base URL from R1D_URL (e.g. http://127.0.0.1:8000) or OPENAI_BASE_URL (with
/v1), key from R1D_API_KEY (default "none"), model from R1D_MODEL (default:
the first one the server lists)."""
import os

from openai import OpenAI


def client():
    base = os.environ.get("OPENAI_BASE_URL")
    if os.environ.get("R1D_URL") or not base:
        base = os.environ.get("R1D_URL", "http://127.0.0.1:8000").rstrip("/") + "/v1"
    return OpenAI(base_url=base, api_key=os.environ.get("R1D_API_KEY", "none"))


def model(c):
    return os.environ.get("R1D_MODEL") or c.models.list().data[0].id
