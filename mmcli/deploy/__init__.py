"""Deployment: the prediction server (`mm serve`) and the predictor protocol it depends on.

Nothing here imports torch; `serve.py` imports FastAPI and uvicorn (the `serve` extra), the other modules only the
standard library.
"""
